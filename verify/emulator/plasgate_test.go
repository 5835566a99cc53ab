package emulator_test

import (
	"encoding/json"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/simproof/simproof/verify/emulator"
)

const pgCallback = "https://backend.example/plasgate/callback"

func (v *env) authURL(hint, scope, state string, extra url.Values) string {
	q := url.Values{
		"private_key":  {emulator.DefaultPlasGatePrivateKey},
		"redirect_uri": {pgCallback},
		"scope":        {scope},
		"state":        {state},
	}
	if hint != "" {
		q.Set("login_hint", hint)
	}
	for k, vs := range extra {
		q[k] = vs
	}
	return v.e.BaseURL(emulator.RolePlasGate) + "/ip/authenticate?" + q.Encode()
}

// pgWalk walks the chain from src and returns the final redirect's query.
func (v *env) pgWalk(src netip.Addr, authURL string) (url.Values, []hop) {
	v.t.Helper()
	hops := v.walk(v.device(src), authURL, 10)
	h := last(hops)
	if h.Status != 302 || !strings.HasPrefix(h.Location, pgCallback+"?") {
		v.t.Fatalf("chain ended %d %q", h.Status, h.Location)
	}
	u, _ := url.Parse(h.Location)
	return u.Query(), hops
}

func (v *env) exchange(path string, secret string, body map[string]any, query string) (int, map[string]any) {
	v.t.Helper()
	b, _ := json.Marshal(body)
	u := v.e.BaseURL(emulator.RolePlasGate) + path
	if query != "" {
		u += "?" + query
	}
	st, _, m := v.do("POST", u, map[string]string{"X-Secret": secret, "Content-Type": "application/json"}, b)
	return st, m
}

func exchangeBody(q url.Values) map[string]any {
	return map[string]any{
		"response_type": "code", "state": q.Get("state"), "redirect_uri": pgCallback,
		"code": q.Get("code"), "private_key": emulator.DefaultPlasGatePrivateKey,
	}
}

func TestPlasGateChainAndExchange(t *testing.T) {
	v := start(t, nil)
	cases := []struct {
		name     string
		src      netip.Addr
		hint     string
		scope    string
		status   string
		verified any
		want     []string // keys that must be present
		absent   []string
	}{
		{"verified", srcA, numA, "phone_verify", "success", "true", []string{"login_hint", "sid", "sub", "error_description"}, []string{"mobile_id", "phone_number"}},
		{"not this subscriber", srcA, numB, "phone_verify", "failed", "false", []string{"login_hint"}, []string{"phone_number"}},
		{"unidentified", srcUnknown, numA, "phone_verify", "failed", "false", nil, []string{"mobile_id"}},
		{"seed's two scopes", srcB, numB, "mobile_id phone_verify", "success", "true", []string{"mobile_id", "login_hint"}, nil},
		{"ip: forms and openid", srcB, numB, "openid ip:phone_verify ip:mobile_id", "success", "true", []string{"mobile_id"}, nil},
		{"mobile_id without hint", srcA, "", "mobile_id", "success", nil, []string{"mobile_id"}, []string{"login_hint", "phone_number_verified"}},
		{"phone", srcA, "", "phone", "success", nil, []string{"phone_number"}, []string{"phone_number_verified"}},
		{"profile", srcA, numA, "profile", "success", "true", []string{"given_name", "family_name", "birthdate", "gender", "personal_identification_number", "address"}, nil},
		{"profile not verified", srcA, numB, "profile", "failed", "false", nil, []string{"given_name", "address"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			state := "st-" + strings.ReplaceAll(c.name, " ", "-")
			q, hops := v.pgWalk(c.src, v.authURL(c.hint, c.scope, state, nil))
			if len(hops) != 4 || !strings.HasPrefix(hops[0].Location, v.e.BaseURL(emulator.RoleOperator)+"/op/plasgate/start?") ||
				!hops[1].Cookie || strings.Contains(hops[1].Location, "://") ||
				!strings.HasPrefix(hops[2].Location, v.e.BaseURL(emulator.RolePlasGate)+"/ip/callback?") {
				t.Fatalf("chain shape: %+v", hops)
			}
			if q.Get("state") != state || q.Get("session_state") == "" || !strings.Contains(q.Get("code"), "."+q.Get("session_state")+".") {
				t.Fatalf("redirect query %v", q)
			}
			st, m := v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, exchangeBody(q), "")
			if st != 200 || m["status"] != c.status || m["phone_number_verified"] != c.verified {
				t.Fatalf("exchange %d %v", st, m)
			}
			for _, k := range c.want {
				if _, ok := m[k]; !ok {
					t.Errorf("missing %s in %v", k, m)
				}
			}
			for _, k := range c.absent {
				if _, ok := m[k]; ok {
					t.Errorf("unexpected %s in %v", k, m)
				}
			}
			if c.status == "failed" && (m["sub"] != "anonymous" || strings.TrimSpace(m["error_description"].(string)) == "") {
				t.Errorf("failure shape %v", m)
			}
			if c.status == "success" && (m["sub"] == "anonymous" || m["error_description"] != " ") {
				t.Errorf("success shape %v", m)
			}
			// Codes are single-use.
			if st, m := v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, exchangeBody(q), ""); st != 400 || m["status"] != "failed" {
				t.Errorf("second exchange %d %v", st, m)
			}
		})
	}
}

func TestPlasGateMobileIDIsStable(t *testing.T) {
	v := start(t, nil)
	ids := map[string]bool{}
	for range 2 {
		q, _ := v.pgWalk(srcA, v.authURL("", "mobile_id", "s", nil))
		_, m := v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, exchangeBody(q), "")
		ids[m["mobile_id"].(string)] = true
	}
	q, _ := v.pgWalk(srcB, v.authURL("", "mobile_id", "s", nil))
	_, m := v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, exchangeBody(q), "")
	if len(ids) != 1 || ids[m["mobile_id"].(string)] {
		t.Errorf("mobile_id must be stable per subscriber and differ between them: %v vs %v", ids, m["mobile_id"])
	}
}

func TestPlasGateErrorEndings(t *testing.T) {
	v := start(t, nil)
	for _, c := range []struct {
		name  string
		src   netip.Addr
		url   string
		err   string
		hops  int
		state string
	}{
		{"not mobile", srcNotMobil, v.authURL(numA, "phone_verify", "s1", nil), "access_denied", 1, "s1"},
		{"unknown private key", srcA, v.authURL(numA, "phone_verify", "s2", url.Values{"private_key": {"nope"}}), "unauthorized_client", 1, "s2"},
		{"bad scope", srcA, v.authURL(numA, "email", "s3", nil), "invalid_scope", 1, "s3"},
		{"phone_verify without hint", srcA, v.authURL("", "phone_verify", "s4", nil), "invalid_request", 1, "s4"},
		{"hint with plus", srcA, v.authURL("+"+numA, "phone_verify", "s5", nil), "invalid_request", 1, "s5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, hops := v.pgWalk(c.src, c.url)
			if len(hops) != c.hops || q.Get("error") != c.err || q.Get("error_description") == "" || q.Get("state") != c.state || q.Has("code") {
				t.Errorf("%d hops, query %v", len(hops), q)
			}
		})
	}
	t.Run("not mobile description", func(t *testing.T) {
		q, _ := v.pgWalk(srcNotMobil, v.authURL(numA, "phone_verify", "s", nil))
		if q.Get("error_description") != emulator.NotMobileDescription {
			t.Errorf("%q", q.Get("error_description"))
		}
	})
	t.Run("phone_number instead of login_hint", func(t *testing.T) {
		u := v.authURL("", "phone_verify", "s", url.Values{"phone_number": {numA}})
		q, _ := v.pgWalk(srcA, u)
		if _, m := v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, exchangeBody(q), ""); m["login_hint"] != numA || m["status"] != "success" {
			t.Errorf("%v", m)
		}
	})
	t.Run("unregistered redirect_uri is never followed", func(t *testing.T) {
		w := start(t, func(c *emulator.Config) { c.PlasGateRedirectURIs = []string{"https://other.example/cb"} })
		h := w.walk(w.device(srcA), w.authURL(numA, "phone_verify", "s", nil), 10)
		if len(h) != 1 || last(h).Status != 400 || last(h).Location != "" {
			t.Errorf("%+v", h)
		}
	})
}

func TestPlasGateFaults(t *testing.T) {
	v := start(t, nil)
	t.Run("state mismatch", func(t *testing.T) {
		v.e.SetFaults(numA, emulator.Faults{StateMismatch: true})
		t.Cleanup(v.e.ClearFaults)
		q, _ := v.pgWalk(srcA, v.authURL(numA, "phone_verify", "mine", nil))
		if q.Get("state") == "mine" || q.Get("state") == "" || q.Get("code") == "" {
			t.Fatalf("%v", q)
		}
		// A client that ignores the mismatch and echoes the server's state
		// still gets a result; one that sends its own state does not.
		body := exchangeBody(q)
		body["state"] = "mine"
		if st, _ := v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, body, ""); st != 400 {
			t.Errorf("own state accepted: %d", st)
		}
	})
	t.Run("error ending", func(t *testing.T) {
		v.e.SetFaults(numA, emulator.Faults{PlasGateError: "access_denied"})
		t.Cleanup(v.e.ClearFaults)
		q, hops := v.pgWalk(srcA, v.authURL(numA, "phone_verify", "x", nil))
		if len(hops) != 4 || q.Get("error") != "access_denied" || q.Get("state") != "x" || q.Has("code") {
			t.Errorf("%d hops %v", len(hops), q)
		}
	})
	t.Run("NotMobileIP from a mobile source", func(t *testing.T) {
		v.e.SetFaults(numA, emulator.Faults{NotMobileIP: true})
		t.Cleanup(v.e.ClearFaults)
		q, _ := v.pgWalk(srcA, v.authURL(numA, "phone_verify", "x", nil))
		if q.Get("error") != "access_denied" {
			t.Errorf("%v", q)
		}
	})
	for _, c := range []struct {
		name   string
		f      emulator.Faults
		status int
	}{
		{"403 knob", emulator.Faults{Exchange403: true}, 403},
		{"500 knob", emulator.Faults{Exchange500: true}, 500},
	} {
		t.Run(c.name, func(t *testing.T) {
			v.e.SetFaults(numA, c.f)
			t.Cleanup(v.e.ClearFaults)
			q, _ := v.pgWalk(srcA, v.authURL(numA, "phone_verify", "x", nil))
			if st, m := v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, exchangeBody(q), ""); st != c.status || m["status"] != "failed" {
				t.Errorf("%d %v", st, m)
			}
		})
	}
	t.Run("boolean phone_number_verified", func(t *testing.T) {
		v.e.SetFaults(numA, emulator.Faults{VerifiedBool: true})
		t.Cleanup(v.e.ClearFaults)
		q, _ := v.pgWalk(srcA, v.authURL(numA, "phone_verify", "x", nil))
		if _, m := v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, exchangeBody(q), ""); m["phone_number_verified"] != true {
			t.Errorf("%v", m)
		}
	})
	t.Run("chain faults apply to PlasGate", func(t *testing.T) {
		v.e.SetFaults(numA, emulator.Faults{ExtraHops: 2, BadLocation: true})
		t.Cleanup(v.e.ClearFaults)
		_, hops := v.pgWalk(srcA, v.authURL(numA, "phone_verify", "x", nil))
		if len(hops) != 6 || !strings.HasPrefix(hops[3].URL.Path, "/op/plasgate/relay/") {
			t.Errorf("%d hops", len(hops))
		}
	})
}

func TestPlasGateExchangeAuth(t *testing.T) {
	v := start(t, nil)
	fresh := func() url.Values {
		q, _ := v.pgWalk(srcA, v.authURL(numA, "phone_verify", "x", nil))
		return q
	}
	t.Run("bad X-Secret", func(t *testing.T) {
		if st, _ := v.exchange("/ip/ip-auth", "wrong", exchangeBody(fresh()), ""); st != 403 {
			t.Errorf("%d", st)
		}
	})
	t.Run("bad private_key", func(t *testing.T) {
		b := exchangeBody(fresh())
		b["private_key"] = "wrong"
		if st, _ := v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, b, ""); st != 403 {
			t.Errorf("%d", st)
		}
	})
	t.Run("private_key in the query", func(t *testing.T) {
		v.e.ResetObservations()
		b := exchangeBody(fresh())
		delete(b, "private_key")
		st, m := v.exchange("/ip/check-info", emulator.DefaultPlasGateSecret, b, "private_key="+url.QueryEscape(emulator.DefaultPlasGatePrivateKey))
		if st != 200 || m["status"] != "success" {
			t.Fatalf("%d %v", st, m)
		}
		rq := v.e.Requests()
		r := rq[len(rq)-1]
		if r.Path != "/ip/check-info" || strings.Join(r.QueryKeys, ",") != "private_key" ||
			strings.Join(r.BodyKeys, ",") != "code,redirect_uri,response_type,state" || r.AuthKind != "x-secret" {
			t.Errorf("observation %+v", r)
		}
	})
	t.Run("wrong redirect_uri", func(t *testing.T) {
		b := exchangeBody(fresh())
		b["redirect_uri"] = "https://evil.example/cb"
		if st, _ := v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, b, ""); st != 400 {
			t.Errorf("%d", st)
		}
	})
	t.Run("wrong response_type", func(t *testing.T) {
		b := exchangeBody(fresh())
		b["response_type"] = "token"
		if st, _ := v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, b, ""); st != 400 {
			t.Errorf("%d", st)
		}
	})
	t.Run("expired code", func(t *testing.T) {
		q := fresh()
		v.clock.Advance(emulator.DefaultCodeTTL)
		if st, _ := v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, exchangeBody(q), ""); st != 400 {
			t.Errorf("%d", st)
		}
	})
	t.Run("unknown code", func(t *testing.T) {
		b := exchangeBody(fresh())
		b["code"] = "a.b.c"
		if st, _ := v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, b, ""); st != 400 {
			t.Errorf("%d", st)
		}
	})
	// Counted since the reset in "private_key in the query": five chains,
	// one result (every other exchange was refused).
	s := v.e.Stats()
	if s.PlasGateAuths != 5 || s.PlasGateCodes != 5 || s.PlasGateResults != 1 {
		t.Errorf("stats %+v", s)
	}
}
