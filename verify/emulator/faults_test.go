package emulator_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/simproof/simproof/verify/emulator"
)

// pollStatuses polls n times and returns "status[/check-status]" per poll.
func (v *env) pollStatuses(tok, version, id string, n int) []string {
	var out []string
	for range n {
		st, hdr, m := v.get(tok, version, id)
		s := http.StatusText(st)
		if st == 200 {
			s = m["status"].(string)
		}
		if ra := hdr.Get("Retry-After"); ra != "" {
			s += "+RA" + ra
		}
		out = append(out, s)
	}
	return out
}

func TestIDlayrFaults(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")
	cases := []struct {
		name     string
		f        emulator.Faults
		hopCount int    // requests in the device walk
		final    int    // status of the last hop
		code     string // its error_code when problem+json
		polls    []string
		match    any
	}{
		{"412", emulator.Faults{NotMobileIP: true}, 1, 412, "not_mobile_ip", []string{"ERROR"}, nil},
		{"409", emulator.Faults{Mismatch: true}, 1, 409, "ip_msisdn_mismatch", []string{"ERROR"}, nil},
		{"501", emulator.Faults{RedirectUnsupported: true}, 1, 501, "mno_redirect_unsupported", []string{"ERROR"}, nil},
		{"429 on poll", emulator.Faults{RateLimitPolls: 2, RetryAfter: 3 * time.Second}, 4, 200, "",
			[]string{"Too Many Requests+RA3", "Too Many Requests+RA3", "COMPLETED"}, true},
		{"5xx on poll", emulator.Faults{ServerErrorPolls: 2}, 4, 200, "",
			[]string{"Service Unavailable", "Service Unavailable", "COMPLETED"}, true},
		{"502 on poll", emulator.Faults{ServerErrorPolls: 1, ServerErrorStatus: 502}, 4, 200, "",
			[]string{"Bad Gateway", "COMPLETED"}, true},
		{"429 then 5xx", emulator.Faults{RateLimitPolls: 1, ServerErrorPolls: 1}, 4, 200, "",
			[]string{"Too Many Requests+RA1", "Service Unavailable", "COMPLETED"}, true},
		{"pending", emulator.Faults{PendingPolls: 2}, 4, 200, "", []string{"PENDING", "PENDING", "COMPLETED", "COMPLETED"}, true},
		{"error", emulator.Faults{ErrorCode: "mno_timeout"}, 4, 200, "", []string{"ERROR"}, nil},
		{"forced match false", emulator.Faults{Match: new(false)}, 4, 200, "", []string{"COMPLETED"}, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			phone := "4477009005" + string(rune('0'+i/10)) + string(rune('0'+i%10))
			v.e.SetFaults(phone, c.f)
			v.e.SetSubscriber(srcUnknown, phone)
			t.Cleanup(func() { v.e.SetSubscriber(srcUnknown, "") })
			id, checkURL := v.mustCreate(tok, "v0.1", phone, "")
			hops := v.walk(v.device(srcUnknown), checkURL, 10)
			h := last(hops)
			if len(hops) != c.hopCount || h.Status != c.final {
				t.Fatalf("walk: %d hops ending %d, want %d ending %d", len(hops), h.Status, c.hopCount, c.final)
			}
			if c.code != "" && (jsonBody(t, h.Body)["error_code"] != c.code || h.Header.Get("Content-Type") != "application/problem+json") {
				t.Errorf("problem %s", h.Body)
			}
			got := v.pollStatuses(tok, "v0.1", id, len(c.polls))
			if strings.Join(got, ",") != strings.Join(c.polls, ",") {
				t.Errorf("polls %v, want %v", got, c.polls)
			}
			_, _, m := v.get(tok, "v0.1", id)
			if m["match"] != c.match {
				t.Errorf("match %v, want %v (%v)", m["match"], c.match, m)
			}
			if c.name == "error" && m["error_code"] != "mno_timeout" {
				t.Errorf("error_code %v", m["error_code"])
			}
		})
	}
}

func TestCreateFaults(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")
	v.e.SetFaults(numA, emulator.Faults{MNONotSupported: true})
	if st, _, m := v.create(tok, "v0.1", numA, ""); st != 400 || m["error_code"] != "mno_not_supported" {
		t.Errorf("mno_not_supported: %d %v", st, m)
	}
	v.e.SetFaults(numA, emulator.Faults{CreateRateLimit: 1, RetryAfter: 2 * time.Second})
	st, hdr, m := v.create(tok, "v0.1", numA, "")
	if st != 429 || hdr.Get("Retry-After") != "2" || m["error_code"] != "rate_limited" {
		t.Errorf("first create: %d %v %v", st, hdr, m)
	}
	if st, _, _ := v.create(tok, "v0.1", numA, ""); st != 201 {
		t.Errorf("second create: %d", st)
	}
	if got := v.e.Stats().ChecksCreated; got != 1 {
		t.Errorf("ChecksCreated %d, want 1", got)
	}
}

func TestExpire(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")
	v.e.SetFaults(numA, emulator.Faults{Expire: true, TTL: 30 * time.Second})
	id, checkURL := v.mustCreate(tok, "v0.1", numA, "")
	if h := v.walk(v.device(srcA), checkURL, 10); last(h).Status != 200 {
		t.Fatalf("device step: %+v", last(h))
	}
	_, _, m := v.get(tok, "v0.1", id)
	if m["status"] != "PENDING" || m["ttl"].(float64) != 30 {
		t.Fatalf("before ttl: %v", m)
	}
	v.clock.Advance(29 * time.Second)
	if _, _, m := v.get(tok, "v0.1", id); m["status"] != "PENDING" {
		t.Fatalf("just before ttl: %v", m)
	}
	v.clock.Advance(time.Second)
	if _, _, m := v.get(tok, "v0.1", id); m["status"] != "EXPIRED" {
		t.Fatalf("after ttl: %v", m)
	}

	// Without the knob, a check nobody walks expires too, and its URL is gone.
	v.e.ClearFaults()
	id, checkURL = v.mustCreate(tok, "v0.1", numA, "")
	v.clock.Advance(61 * time.Second)
	if _, _, m := v.get(tok, "v0.1", id); m["status"] != "EXPIRED" {
		t.Fatalf("unwalked: %v", m)
	}
	if h := v.walk(v.device(srcA), checkURL, 10); last(h).Status != 410 || jsonBody(t, last(h).Body)["error_code"] != "check_expired" {
		t.Errorf("expired check URL: %d %s", last(h).Status, last(h).Body)
	}
	// A completed check never expires.
	id, checkURL = v.mustCreate(tok, "v0.1", numA, "")
	v.walk(v.device(srcA), checkURL, 10)
	v.clock.Advance(30 * time.Minute)
	if _, _, m := v.get(tok, "v0.1", id); m["status"] != "COMPLETED" {
		t.Errorf("completed then late: %v", m)
	}
	if h := v.walk(v.device(srcA), checkURL, 10); last(h).Status != 410 || jsonBody(t, last(h).Body)["error_code"] != "check_url_used" {
		t.Errorf("reused check URL: %d %s", last(h).Status, last(h).Body)
	}
}

func TestChainFaults(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")

	t.Run("redirect loop", func(t *testing.T) {
		v.e.SetFaults(numA, emulator.Faults{RedirectLoop: true})
		t.Cleanup(v.e.ClearFaults)
		_, checkURL := v.mustCreate(tok, "v0.1", numA, "")
		hops := v.walk(v.device(srcA), checkURL, 8)
		if len(hops) != 8 || last(hops).Status != 302 {
			t.Fatalf("%d hops", len(hops))
		}
		// check_url, start, loop-a, loop-b, loop-a: the third URL comes back.
		if hops[2].URL.String() != hops[4].URL.String() || hops[3].URL.String() != hops[5].URL.String() ||
			!strings.Contains(hops[2].URL.Path, "loop-a") || !strings.Contains(hops[3].URL.Path, "loop-b") {
			t.Errorf("not a loop: %s %s %s", hops[2].URL, hops[3].URL, hops[4].URL)
		}
	})

	t.Run("over-long chain", func(t *testing.T) {
		v.e.SetFaults(numA, emulator.Faults{ExtraHops: 9})
		t.Cleanup(v.e.ClearFaults)
		id, checkURL := v.mustCreate(tok, "v0.1", numA, "")
		hops := v.walk(v.device(srcA), checkURL, 30)
		if len(hops) != 13 || last(hops).Status != 200 {
			t.Fatalf("%d hops ending %d, want 13 (12 redirects) ending 200", len(hops), last(hops).Status)
		}
		for _, h := range hops[2:11] {
			if !strings.HasPrefix(h.URL.Path, "/op/idlayr/relay/") {
				t.Errorf("relay hop %s", h.URL.Path)
			}
		}
		if _, _, m := v.get(tok, "v0.1", id); m["match"] != true {
			t.Errorf("long chain result %v", m)
		}
	})

	t.Run("bad Location with a space", func(t *testing.T) {
		v.e.SetFaults(numA, emulator.Faults{BadLocation: true})
		t.Cleanup(v.e.ClearFaults)
		id, checkURL := v.mustCreate(tok, "v0.1", numA, "")
		hops := v.walk(v.device(srcA), checkURL, 10)
		if !strings.HasPrefix(hops[1].Location, "next hop?") || len(hops) != 4 || last(hops).Status != 200 {
			t.Fatalf("Location %q, %d hops ending %d", hops[1].Location, len(hops), last(hops).Status)
		}
		if hops[2].URL.EscapedPath() != "/op/idlayr/next%20hop" {
			t.Errorf("requested %s", hops[2].URL.EscapedPath())
		}
		if _, _, m := v.get(tok, "v0.1", id); m["match"] != true {
			t.Errorf("result %v", m)
		}
	})

	t.Run("slow hop", func(t *testing.T) {
		v.e.SetFaults(numA, emulator.Faults{SlowHop: 300 * time.Millisecond})
		t.Cleanup(v.e.ClearFaults)
		id, checkURL := v.mustCreate(tok, "v0.1", numA, "")
		v.e.ResetObservations()
		hops := v.walk(v.device(srcA), checkURL, 10)
		if last(hops).Status != 200 {
			t.Fatalf("slow chain ended %d", last(hops).Status)
		}
		var delayed []string
		for _, r := range v.e.Requests() {
			if r.Delayed {
				delayed = append(delayed, r.Path)
			}
		}
		if len(delayed) != 1 || delayed[0] != "/op/idlayr/hop2" {
			t.Errorf("delayed hops %v", delayed)
		}
		if _, _, m := v.get(tok, "v0.1", id); m["match"] != true {
			t.Errorf("result %v", m)
		}
	})

	t.Run("slow hop outlasts a client timeout", func(t *testing.T) {
		// The hop cannot answer before 30s, so a 200ms client deadline
		// always fires first; Close (via Cleanup) wakes the handler.
		v.e.SetFaults(numA, emulator.Faults{SlowHop: 30 * time.Second})
		t.Cleanup(v.e.ClearFaults)
		_, checkURL := v.mustCreate(tok, "v0.1", numA, "")
		c := v.device(srcA)
		hops := v.walk(c, checkURL, 2) // check_url and start: the cookie is set
		next, _ := hops[1].URL.Parse(hops[1].Location)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", next.String(), nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("slow hop answered %d before the deadline", resp.StatusCode)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("want a timeout, got %v", err)
		}
	})
}

// One emulator serves tests with different faults at once: knobs are per
// number, and a number without its own entry gets the default.
func TestFaultsArePerNumber(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")
	v.e.SetFaults("", emulator.Faults{PendingPolls: 1})
	v.e.SetFaults("+"+numB, emulator.Faults{Mismatch: true})
	idA, urlA := v.mustCreate(tok, "v0.1", numA, "")
	idB, urlB := v.mustCreate(tok, "v0.1", numB, "")
	if h := v.walk(v.device(srcB), urlB, 10); last(h).Status != 409 {
		t.Errorf("B: %d", last(h).Status)
	}
	if h := v.walk(v.device(srcA), urlA, 10); last(h).Status != 200 {
		t.Errorf("A: %d", last(h).Status)
	}
	if got := v.pollStatuses(tok, "v0.1", idA, 2); got[0] != "PENDING" || got[1] != "COMPLETED" {
		t.Errorf("A polls %v (default faults)", got)
	}
	if _, _, m := v.get(tok, "v0.1", idB); m["error_code"] != "ip_msisdn_mismatch" {
		t.Errorf("B %v", m)
	}
	if f := v.e.FaultsFor(numB); !f.Mismatch {
		t.Errorf("FaultsFor %+v", f)
	}
}

func TestSandboxNumbers(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")
	cases := []struct {
		digit  byte
		create int
		walk   int // final device status (0: not walked)
		polls  []string
		match  any
		code   string
	}{
		{'0', 201, 200, []string{"COMPLETED"}, true, ""},
		{'1', 201, 200, []string{"COMPLETED"}, false, ""},
		{'2', 201, 412, []string{"ERROR"}, nil, "not_mobile_ip"},
		{'3', 201, 409, []string{"ERROR"}, nil, "ip_msisdn_mismatch"},
		{'4', 400, 0, nil, nil, "mno_not_supported"},
		{'5', 201, 501, []string{"ERROR"}, nil, "mno_redirect_unsupported"},
		{'6', 201, 200, []string{"PENDING"}, nil, ""},
		{'7', 201, 200, []string{"ERROR"}, nil, "mno_timeout"},
		{'8', 201, 200, []string{"Too Many Requests+RA1", "COMPLETED"}, true, ""},
		{'9', 201, 200, []string{"PENDING", "PENDING", "COMPLETED"}, true, ""},
	}
	for _, c := range cases {
		phone := emulator.SandboxPrefix + string(c.digit)
		t.Run(phone, func(t *testing.T) {
			st, _, m := v.create(tok, "v0.1", phone, "")
			if st != c.create {
				t.Fatalf("create %d %v", st, m)
			}
			if st != 201 {
				if m["error_code"] != c.code {
					t.Errorf("create error %v", m)
				}
				return
			}
			id := m["check_id"].(string)
			checkURL := m["_links"].(map[string]any)["check_url"].(map[string]any)["href"].(string)
			// Sandbox numbers that force a match answer from any source,
			// even one the operator would call Wi-Fi.
			src := srcNotMobil
			if c.walk != 200 || c.match == nil {
				src = srcA
			}
			if h := v.walk(v.device(src), checkURL, 10); last(h).Status != c.walk {
				t.Fatalf("walk from %s ended %d, want %d", src, last(h).Status, c.walk)
			}
			if got := v.pollStatuses(tok, "v0.1", id, len(c.polls)); strings.Join(got, ",") != strings.Join(c.polls, ",") {
				t.Errorf("polls %v, want %v", got, c.polls)
			}
			_, _, m = v.get(tok, "v0.1", id)
			if m["match"] != c.match || (c.code != "" && m["error_code"] != c.code) {
				t.Errorf("check %v", m)
			}
		})
	}
	t.Run("expiry of 6", func(t *testing.T) {
		id, checkURL := v.mustCreate(tok, "v0.1", emulator.SandboxPrefix+"6", "")
		v.walk(v.device(srcA), checkURL, 10)
		v.clock.Advance(time.Minute)
		if _, _, m := v.get(tok, "v0.1", id); m["status"] != "EXPIRED" {
			t.Errorf("%v", m)
		}
	})
	t.Run("explicit faults win over the sandbox", func(t *testing.T) {
		phone := emulator.SandboxPrefix + "2"
		v.e.SetFaults(phone, emulator.Faults{})
		t.Cleanup(v.e.ClearFaults)
		v.e.SetSubscriber(srcUnknown, phone)
		t.Cleanup(func() { v.e.SetSubscriber(srcUnknown, "") })
		id, checkURL := v.mustCreate(tok, "v0.1", phone, "")
		v.walk(v.device(srcUnknown), checkURL, 10)
		if _, _, m := v.get(tok, "v0.1", id); m["match"] != true {
			t.Errorf("%v", m)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		w := start(t, func(c *emulator.Config) { c.DisableSandbox = true })
		tk := w.token("phone_check")
		if st, _, _ := w.create(tk, "v0.1", emulator.SandboxPrefix+"4", ""); st != 201 {
			t.Errorf("sandbox rule applied while disabled: %d", st)
		}
	})
}

func TestV02Faults(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")
	const cb = "https://app.example/cb"
	for _, c := range []struct {
		name string
		f    emulator.Faults
		code string
	}{
		{"501 as redirect", emulator.Faults{RedirectUnsupported: true}, "mno_redirect_unsupported"},
		{"409 as redirect", emulator.Faults{Mismatch: true}, "ip_msisdn_mismatch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v.e.SetFaults(numA, c.f)
			t.Cleanup(v.e.ClearFaults)
			_, checkURL := v.mustCreate(tok, "v0.2", numA, cb)
			h := last(v.walk(v.device(srcA), checkURL, 10))
			loc, _ := url.Parse(h.Location)
			if h.Status != 302 || loc.Query().Get("error") != c.code {
				t.Errorf("%d %s", h.Status, h.Location)
			}
		})
	}
	t.Run("ERROR after PATCH", func(t *testing.T) {
		v.e.SetFaults(numA, emulator.Faults{ErrorCode: "mno_timeout"})
		t.Cleanup(v.e.ClearFaults)
		id, checkURL := v.mustCreate(tok, "v0.2", numA, "")
		code := jsonBody(t, last(v.walk(v.device(srcA), checkURL, 10)).Body)["code"].(string)
		if st, m := v.patch(tok, id, code, "application/json-patch+json"); st != 200 || m["status"] != "ERROR" || m["error_code"] != "mno_timeout" {
			t.Errorf("%d %v", st, m)
		}
	})
	t.Run("Expire after PATCH", func(t *testing.T) {
		v.e.SetFaults(numA, emulator.Faults{Expire: true})
		t.Cleanup(v.e.ClearFaults)
		id, checkURL := v.mustCreate(tok, "v0.2", numA, "")
		code := jsonBody(t, last(v.walk(v.device(srcA), checkURL, 10)).Body)["code"].(string)
		if st, m := v.patch(tok, id, code, "application/json-patch+json"); st != 200 || m["status"] != "PENDING" {
			t.Errorf("%d %v", st, m)
		}
		v.clock.Advance(time.Minute)
		if _, _, m := v.get(tok, "v0.2", id); m["status"] != "EXPIRED" {
			t.Errorf("%v", m)
		}
	})
}
