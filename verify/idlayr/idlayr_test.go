package idlayr_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/idlayr"
)

const phone = "+447700900123"

func (f *fakeAPI) request(progress verify.Progress) verify.Request {
	return verify.Request{PhoneNumber: phone, Device: f.srv.Client(), Interface: "wwan0", Progress: progress}
}

func wantCode(t *testing.T, err error, code string) *verify.Error {
	t.Helper()
	var e *verify.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *verify.Error", err, err)
	}
	if e.Code != code {
		t.Fatalf("code %q, want %q: %v", e.Code, code, err)
	}
	return e
}

func TestBasicAuthIsRawBase64(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, nil)
	if _, err := p.Check(context.Background(), f.request(nil)); err != nil {
		t.Fatal(err)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(testClientID+":"+testSecret))
	escaped := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(testClientID)+":"+url.QueryEscape(testSecret)))
	if want == escaped {
		t.Fatal("test secret does not tell the two encodings apart")
	}
	if len(f.authHeader) != 1 || f.authHeader[0] != want {
		t.Fatalf("token Authorization %q, want %q", f.authHeader, want)
	}
	form := f.tokenForms[0]
	if form.Get("grant_type") != "client_credentials" || form.Get("scope") != "phone_check" ||
		form.Get("client_secret") != "" || form.Get("client_id") != "" {
		t.Errorf("token form %v", form)
	}
}

func TestCheckV01(t *testing.T) {
	for _, match := range []bool{true, false} {
		t.Run(fmt.Sprint("match=", match), func(t *testing.T) {
			f := newFake(t)
			f.match = match
			f.pending = 2
			p := f.provider(t, nil)
			var stages []verify.Stage
			var createdID string
			progress := func(e verify.Event) error {
				stages = append(stages, e.Stage)
				if e.Stage == verify.StageCreated {
					createdID = e.CheckID
					if n := f.count("device"); n != 0 {
						t.Errorf("check id reported after the device step began (%d device requests)", n)
					}
				}
				return nil
			}
			res, err := p.Check(context.Background(), f.request(progress))
			if err != nil {
				t.Fatal(err)
			}
			if *res.Verified != match || res.Match == nil || *res.Match != match || res.Reason != "" ||
				res.ProviderStatus != "COMPLETED" || res.CheckID == "" || res.CheckID != createdID {
				t.Fatalf("result %+v", res)
			}
			if fmt.Sprint(stages) != "[created device result]" {
				t.Errorf("stages %v", stages)
			}
			if len(res.Trace) != 2 || res.Trace[0].Status != 302 || res.Trace[1].Status != 200 || res.Trace[0].Interface != "wwan0" {
				t.Errorf("trace %+v", res.Trace)
			}
			if n := f.count("get"); n != 3 {
				t.Errorf("%d GETs, want 3 (2 PENDING, then COMPLETED)", n)
			}
		})
	}
}

func TestProgressErrorStopsBeforeDevice(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, nil)
	_, err := p.Check(context.Background(), f.request(func(e verify.Event) error {
		return errors.New("journal unavailable")
	}))
	if err == nil || !strings.Contains(err.Error(), "journal unavailable") {
		t.Fatalf("err %v", err)
	}
	if n := f.count("device"); n != 0 {
		t.Fatalf("device step ran %d times after the journal failed", n)
	}
}

func TestTokenCache(t *testing.T) {
	t.Run("one token for many checks", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, nil)
		var wg sync.WaitGroup
		for i := 0; i < 5; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := p.Check(context.Background(), f.request(nil)); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := p.TokenFetches(idlayr.ScopePhoneCheck); n != 1 {
			t.Fatalf("%d token fetches for 5 checks", n)
		}
	})
	t.Run("refresh once on 401", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, nil)
		f.push("create", canned{status: 401, body: `{"status":401}`})
		if _, err := p.Check(context.Background(), f.request(nil)); err != nil {
			t.Fatal(err)
		}
		if n := p.TokenFetches(idlayr.ScopePhoneCheck); n != 2 {
			t.Fatalf("%d token fetches, want 2", n)
		}
	})
	t.Run("401 twice is provider_auth_failed", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, nil)
		f.push("create", canned{status: 401, body: `{}`}, canned{status: 401, body: `{}`})
		_, err := p.Check(context.Background(), f.request(nil))
		wantCode(t, err, verify.CodeProviderAuthFailed)
		if n := f.count("create"); n != 2 {
			t.Errorf("%d creates, want 2", n)
		}
	})
	t.Run("token refused", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, func(c *idlayr.Config) { c.Credentials.ClientSecret = "wrong" })
		_, err := p.Check(context.Background(), f.request(nil))
		wantCode(t, err, verify.CodeProviderAuthFailed)
		if strings.Contains(err.Error(), "wrong") {
			t.Errorf("error shows the secret: %v", err)
		}
	})
	t.Run("refreshed before expiry", func(t *testing.T) {
		f := newFake(t)
		var mu sync.Mutex
		now := time.Now()
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
		p := f.provider(t, func(c *idlayr.Config) { c.Now = clock })
		for i, step := range []struct {
			advance time.Duration
			fetches int
		}{{0, 1}, {30 * time.Minute, 1}, {29*time.Minute + 30*time.Second, 2}, {time.Minute, 2}} {
			advance(step.advance)
			if _, err := p.Check(context.Background(), f.request(nil)); err != nil {
				t.Fatal(err)
			}
			if n := p.TokenFetches(idlayr.ScopePhoneCheck); n != step.fetches {
				t.Fatalf("step %d: %d fetches, want %d", i, n, step.fetches)
			}
		}
	})
}

func TestRetryAfter(t *testing.T) {
	t.Run("honoured within the deadline", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, nil)
		f.push("create", canned{status: 429, body: `{"error_code":"rate_limited"}`, header: map[string]string{"Retry-After": "1"}})
		f.push("get", canned{status: 429, body: `{}`, header: map[string]string{"Retry-After": "0"}})
		res, err := p.Check(context.Background(), f.request(nil))
		if err != nil || !*res.Verified {
			t.Fatalf("%v %+v", err, res)
		}
		if f.count("create") != 2 {
			t.Errorf("%d creates, want 2", f.count("create"))
		}
	})
	t.Run("beyond the deadline", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, nil)
		f.push("create", canned{status: 429, body: `{"error_code":"rate_limited"}`, header: map[string]string{"Retry-After": "300"}})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := p.Check(ctx, f.request(nil))
		e := wantCode(t, err, verify.CodeRateLimited)
		if e.RetryAfter != 300*time.Second || e.HTTPStatus != 429 {
			t.Errorf("error %+v", e)
		}
		if f.count("create") != 1 {
			t.Errorf("%d creates, want 1", f.count("create"))
		}
	})
}

func TestPollingServerErrors(t *testing.T) {
	t.Run("bounded retries recover", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, nil)
		f.push("get", problem(503, "service_unavailable"), problem(500, "oops"))
		res, err := p.Check(context.Background(), f.request(nil))
		if err != nil || !*res.Verified {
			t.Fatalf("%v %+v", err, res)
		}
	})
	t.Run("bounded retries give up", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, func(c *idlayr.Config) { c.ServerRetries = 2 })
		for i := 0; i < 10; i++ {
			f.push("get", problem(503, "service_unavailable"))
		}
		_, err := p.Check(context.Background(), f.request(nil))
		e := wantCode(t, err, verify.CodeProviderError)
		if e.HTTPStatus != 503 || f.count("get") != 3 {
			t.Fatalf("HTTP %d after %d GETs, want 503 after 3", e.HTTPStatus, f.count("get"))
		}
		if len(e.Trace) != 2 || !strings.Contains(e.Message, "c69bc0e6") {
			t.Errorf("error lacks trace or check id: %v %+v", e, e.Trace)
		}
	})
}

func TestExpiry(t *testing.T) {
	t.Run("EXPIRED", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, nil)
		f.push("get", canned{status: 200, body: `{"check_id":"x","status":"EXPIRED"}`})
		_, err := p.Check(context.Background(), f.request(nil))
		wantCode(t, err, verify.CodeExpired)
	})
	t.Run("ttl runs out", func(t *testing.T) {
		f := newFake(t)
		f.pending = 1 << 30
		p := f.provider(t, func(c *idlayr.Config) { c.TTLCap = 300 * time.Millisecond; c.MaxPollInterval = 20 * time.Millisecond })
		_, err := p.Check(context.Background(), f.request(nil))
		e := wantCode(t, err, verify.CodeExpired)
		if !strings.Contains(e.Message, "PENDING") {
			t.Errorf("message %q", e.Message)
		}
		if n := f.count("get"); n < 2 || n > 40 {
			t.Errorf("%d GETs within the ttl", n)
		}
	})
}

func TestProblemMapping(t *testing.T) {
	tests := []struct {
		name    string
		op      string
		answer  canned
		code    string // error code, or the outcome's reason
		outcome bool
	}{
		{"phone_format_invalid", "create", problem(400, "phone_format_invalid"), verify.CodeInvalidPhoneNumber, false},
		{"mno_not_supported", "create", problem(400, "mno_not_supported"), verify.CodeUnsupportedOperator, false},
		{"create 403", "create", problem(403, "insufficient_scope"), verify.CodeProviderAuthFailed, false},
		{"create 500", "create", problem(500, "internal"), verify.CodeProviderError, false},
		{"create 404 is not a check", "create", canned{status: 404, body: "{}"}, verify.CodeProviderError, false},
		{"device 412", "device", problem(412, "not_mobile_ip"), verify.CodeNotMobileIP, true},
		{"device 409", "device", problem(409, "ip_msisdn_mismatch"), verify.CodeOperatorMismatch, true},
		{"device 501", "device", problem(501, "mno_redirect_unsupported"), verify.CodeUnsupportedOperator, false},
		{"device 412 bare", "device", canned{status: 412, body: `{"status":412}`}, verify.CodeNotMobileIP, true},
		{"get 404", "get", problem(404, "check_not_found"), verify.CodeProviderCheckNotFound, false},
		{"get 400", "get", problem(400, "bad_request"), verify.CodeProviderError, false},
		{"ERROR mismatch", "get", canned{status: 200, body: `{"check_id":"x","status":"ERROR","error_code":"ip_msisdn_mismatch"}`},
			verify.CodeOperatorMismatch, true},
		{"ERROR other", "get", canned{status: 200, body: `{"check_id":"x","status":"ERROR","error_code":"mno_timeout"}`},
			verify.CodeProviderError, false},
		{"unknown status", "get", canned{status: 200, body: `{"check_id":"x","status":"WEIRD"}`}, verify.CodeProviderError, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			p := f.provider(t, nil)
			f.push(tc.op, tc.answer)
			res, err := p.Check(context.Background(), f.request(nil))
			if tc.outcome {
				if err != nil {
					t.Fatalf("want a completed check, got %v", err)
				}
				if res.Verified == nil || *res.Verified || res.Reason != tc.code {
					t.Fatalf("result %+v", res)
				}
				return
			}
			e := wantCode(t, err, tc.code)
			if tc.name == "ERROR other" && e.ProviderCode != "mno_timeout" {
				t.Errorf("provider code %q", e.ProviderCode)
			}
		})
	}
}

func TestV02(t *testing.T) {
	var cbHits int
	var mu sync.Mutex
	cb := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cbHits++
		mu.Unlock()
	}))
	t.Cleanup(cb.Close)
	redirectURL := cb.URL + "/idlayr/callback"

	for _, tc := range []struct {
		name      string
		redirect  bool
		forceJSON bool
		hops      int
	}{
		{"json ending", false, false, 2},
		{"redirect ending", true, false, 2},
		{"json ending with redirect_url", true, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.v02JSON = tc.forceJSON
			p := f.provider(t, func(c *idlayr.Config) {
				c.Version = idlayr.V02
				if tc.redirect {
					c.RedirectURL = redirectURL
				}
			})
			var stages []verify.Stage
			res, err := p.Check(context.Background(), f.request(func(e verify.Event) error {
				stages = append(stages, e.Stage)
				return nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			if !*res.Verified || len(res.Trace) != tc.hops {
				t.Fatalf("result %+v trace %+v", res, res.Trace)
			}
			if f.lastPatch.contentType != "application/json-patch+json" ||
				!strings.HasPrefix(f.lastPatch.body, `[{"op":"add","path":"/code","value":"c0de-`) {
				t.Errorf("PATCH %+v", f.lastPatch)
			}
			if fmt.Sprint(stages) != "[created device code_received]" {
				t.Errorf("stages %v", stages)
			}
			mu.Lock()
			defer mu.Unlock()
			if cbHits != 0 {
				t.Fatalf("redirect_url fetched %d times", cbHits)
			}
			if s := fmt.Sprintf("%v %+v %s", res, res.Trace, res.String()); strings.Contains(s, "c0de-") {
				t.Errorf("the code shows in the result: %s", s)
			}
		})
	}

	t.Run("PATCH 404", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, func(c *idlayr.Config) { c.Version = idlayr.V02 })
		f.push("patch", problem(404, "check_not_found"))
		_, err := p.Check(context.Background(), f.request(nil))
		wantCode(t, err, verify.CodeProviderCheckNotFound)
	})
	t.Run("error ending", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, func(c *idlayr.Config) { c.Version = idlayr.V02; c.RedirectURL = redirectURL })
		f.push("device", canned{status: 302, header: map[string]string{"Location": redirectURL + "?error=ip_msisdn_mismatch&error_description=no"}})
		res, err := p.Check(context.Background(), f.request(nil))
		if err != nil || *res.Verified || res.Reason != verify.CodeOperatorMismatch {
			t.Fatalf("%v %+v", err, res)
		}
		f.push("device", canned{status: 302, header: map[string]string{"Location": redirectURL + "?error=server_error"}})
		_, err = p.Check(context.Background(), f.request(nil))
		if e := wantCode(t, err, verify.CodeProviderError); e.ProviderCode != "server_error" {
			t.Errorf("provider code %q", e.ProviderCode)
		}
	})
	t.Run("code of another check", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, func(c *idlayr.Config) { c.Version = idlayr.V02; c.RedirectURL = redirectURL })
		f.push("device", canned{status: 302, header: map[string]string{"Location": redirectURL + "?check_id=other&code=zzz"}})
		_, err := p.Check(context.Background(), f.request(nil))
		wantCode(t, err, verify.CodeBadRedirect)
	})
	t.Run("no code", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, func(c *idlayr.Config) { c.Version = idlayr.V02 })
		f.push("device", canned{status: 200, body: `{"hello":"world"}`})
		_, err := p.Check(context.Background(), f.request(nil))
		wantCode(t, err, verify.CodeBadRedirect)
	})
}

func TestResume(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, nil)
	// A previous run created the check and finished the device step.
	var id string
	_, err := p.Check(context.Background(), f.request(func(e verify.Event) error {
		if e.Stage == verify.StageResult {
			id = e.CheckID
			return errors.New("daemon stopping")
		}
		return nil
	}))
	if err == nil || id == "" {
		t.Fatalf("setup: %v %q", err, id)
	}
	res, err := p.Resume(context.Background(), id)
	if err != nil || !*res.Verified || res.CheckID != id {
		t.Fatalf("resume: %v %+v", err, res)
	}
	_, err = p.Resume(context.Background(), "no-such-check")
	wantCode(t, err, verify.CodeProviderCheckNotFound)
}

func TestCoverage(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, nil)
	c, err := p.Coverage(context.Background(), f.srv.Client())
	if err != nil || !c.PhoneCheck || c.NetworkID != "23410" {
		t.Fatalf("%v %+v", err, c)
	}
	if p.TokenFetches(idlayr.ScopeCoverage) != 1 || p.TokenFetches(idlayr.ScopePhoneCheck) != 0 {
		t.Error("coverage did not use its own scope")
	}
	f.push("coverage", problem(412, "not_mobile_ip"))
	_, err = p.Coverage(context.Background(), f.srv.Client())
	wantCode(t, err, verify.CodeNotMobileIP)
}

func TestInputs(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, nil)
	req := f.request(nil)
	req.PhoneNumber = "07700 900123"
	_, err := p.Check(context.Background(), req)
	wantCode(t, err, verify.CodeInvalidPhoneNumber)
	req = f.request(nil)
	req.Device = nil
	_, err = p.Check(context.Background(), req)
	wantCode(t, err, verify.CodeNoBearer)
	if f.count("create") != 0 {
		t.Error("a check was created for a request that could not run")
	}
	for _, cfg := range []idlayr.Config{
		{},
		{Credentials: idlayr.Credentials{ClientID: "a", ClientSecret: "b"}},
		{Credentials: idlayr.Credentials{ClientID: "a", ClientSecret: "b"}, BaseURL: "http://plain.example"},
		{Credentials: idlayr.Credentials{ClientID: "a", ClientSecret: "b", DataResidency: "eu"}, Version: "v9"},
	} {
		if _, err := idlayr.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		os.Chmod(p, mode)
		return p
	}
	good := write("tru.json", `{"project_id":"p1","name":"bench","data_residency":"eu",
		"credentials":[{"client_id":"cid","client_secret":"s+/=:","scopes":["phone_check"]}]}`, 0o600)
	cr, err := idlayr.LoadCredentials(good)
	if err != nil || cr.ClientID != "cid" || cr.ClientSecret != "s+/=:" || cr.DataResidency != "eu" {
		t.Fatalf("%v %+v", err, cr)
	}
	if s := fmt.Sprintf("%v %+v %#v %s", cr, cr, cr, cr); strings.Contains(s, "s+/=:") {
		t.Errorf("credentials print their secret: %s", s)
	}
	inCred := write("tru2.json", `{"credentials":[{"client_id":"cid","client_secret":"x","data_residency":"in"}]}`, 0o600)
	if cr, err := idlayr.LoadCredentials(inCred); err != nil || cr.DataResidency != "in" {
		t.Errorf("%v %+v", err, cr)
	}
	open := write("open.json", `{"credentials":[{"client_id":"cid","client_secret":"x"}]}`, 0o644)
	if _, err := idlayr.LoadCredentials(open); err == nil || !strings.Contains(err.Error(), open) || !strings.Contains(err.Error(), "0644") {
		t.Errorf("world-readable tru.json: %v", err)
	}
	bad := write("bad.json", `{"credentials":[{"client_id":"cid","client_secret":"hunter2-secret"`, 0o600)
	if _, err := idlayr.LoadCredentials(bad); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("truncated tru.json: %v", err)
	}
	empty := write("empty.json", `{"credentials":[]}`, 0o600)
	if _, err := idlayr.LoadCredentials(empty); err == nil {
		t.Error("no credentials accepted")
	}
	sec := write("secret", "s3cret+/=:\n", 0o600)
	if cr, err := idlayr.CredentialsFromConfig("cid", sec, "eu"); err != nil || cr.ClientSecret != "s3cret+/=:" {
		t.Errorf("%v %+v", err, cr)
	}
	if _, err := idlayr.CredentialsFromConfig("cid", write("secret2", "x", 0o640), "eu"); err == nil {
		t.Error("group-readable secret file accepted")
	}
}

// TestNoSecretsInResultsOrErrors runs checks that succeed and fail and looks
// for the client secret, tokens and codes in every string they produce.
func TestNoSecretsInResultsOrErrors(t *testing.T) {
	secrets := []string{testSecret, "2YotnFZFEjr1zCsicMWpAA", "9f8e7d6c5b4a", "447700900123"}
	check := func(what, s string) {
		t.Helper()
		for _, sec := range secrets {
			if strings.Contains(s, sec) || strings.Contains(s, url.QueryEscape(sec)) {
				t.Errorf("%s shows %q: %s", what, sec, s)
			}
		}
	}
	for _, version := range []string{idlayr.V01, idlayr.V02} {
		f := newFake(t)
		p := f.provider(t, func(c *idlayr.Config) { c.Version = version })
		res, err := p.Check(context.Background(), f.request(nil))
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(res)
		tr, _ := json.Marshal(res.Trace)
		check(version+" result", fmt.Sprintf("%s %s %v %+v", j, tr, res, res))

		loop := canned{status: 302, header: map[string]string{
			"Location": "/device/x/redirect?code=9f8e7d6c5b4a&access_token=2YotnFZFEjr1zCsicMWpAA&msisdn=447700900123"}}
		f.push("device", loop, loop)
		_, err = p.Check(context.Background(), f.request(nil))
		e := wantCode(t, err, verify.CodeRedirectLoop)
		if len(e.Trace) != 2 {
			t.Errorf("trace %+v", e.Trace)
		}
		tr, _ = json.Marshal(e.Trace)
		check(version+" error", fmt.Sprintf("%v %s %+v", err, tr, e))
	}
}

func TestCheckOverPlainHTTPRefused(t *testing.T) {
	// The API must not hand the device an http check URL.
	f := newFake(t)
	p := f.provider(t, nil)
	f.push("create", canned{status: 201, body: `{"check_id":"c1","status":"ACCEPTED","_links":{"check_url":{"href":"http://127.0.0.1:1/x"}}}`})
	_, err := p.Check(context.Background(), f.request(nil))
	wantCode(t, err, verify.CodeBadURL)
}
