package plasgate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/plasgate"
)

const (
	privateKey   = "U4k7_tLbhEGH_rIWYt3Z5A6yFgq3fvwpqK4zn7jCVhHQ"
	xSecret      = "$5$rounds=535000$D8fKlgJ6D5t1uV9h$PZTJgSh8qV2VVoHs"
	issuedCode   = "bb245885-3221-4da7-8b0a-2d352cd906e9.842b5f93"
	sessionState = "842b5f93-2c70-4df3-930e-d7cd42516c31"
	phone        = "+85577696118"
)

// fakePG is a small PlasGate: authenticate (two hops via an "operator"
// path, ending at redirect_uri), the exchange, and a redirect_uri server
// that must never be fetched.
type fakePG struct {
	srv, cb *httptest.Server

	mu sync.Mutex
	// knobs
	authError     string // ?error= at the end of the chain
	stateMismatch bool
	auth403       bool
	exchStatus    int
	claims        map[string]any
	// observations
	authQuery   url.Values
	exchQuery   url.Values
	exchBody    map[string]string
	exchSecret  string
	exchPath    string
	cbHits      int
	issuedState string
}

func newFakePG(t *testing.T) *fakePG {
	f := &fakePG{exchStatus: 200, claims: map[string]any{
		"error_description": " ", "login_hint": "85577696118", "phone_number_verified": "true",
		"mobile_id": "15957db0c9ca", "sid": "fcf393ab", "status": "success", "sub": "30f4c8df",
	}}
	f.cb = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.cbHits++
		f.mu.Unlock()
	}))
	t.Cleanup(f.cb.Close)
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakePG) redirectURI() string { return f.cb.URL + "/callback" }

func (f *fakePG) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/ip/authenticate":
		f.authQuery = r.URL.Query()
		if f.auth403 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(403)
			io.WriteString(w, `{"status":"failed","error_description":"Failed Authentication/Authorization"}`)
			return
		}
		http.Redirect(w, r, "/operator/hop?sid=s1", http.StatusFound)
	case "/operator/hop":
		q := url.Values{}
		st := f.authQuery.Get("state")
		if f.stateMismatch {
			st = "ffffffffffffffffffffffffffffffff"
		}
		f.issuedState = st
		q.Set("state", st)
		if f.authError != "" {
			q.Set("error", f.authError)
			q.Set("error_description", "Please turn off Wi-Fi or use Mobile data network")
		} else {
			q.Set("code", issuedCode)
			q.Set("session_state", sessionState)
		}
		w.Header().Set("Location", f.authQuery.Get("redirect_uri")+"?"+q.Encode())
		w.WriteHeader(http.StatusFound)
	case "/ip/ip-auth", "/ip/check-info":
		f.exchPath = r.URL.Path
		f.exchQuery = r.URL.Query()
		f.exchSecret = r.Header.Get("X-Secret")
		f.exchBody = nil
		json.NewDecoder(r.Body).Decode(&f.exchBody)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.exchStatus)
		if f.exchStatus != 200 {
			io.WriteString(w, `{"status":"failed","error_description":"Failed Authentication/Authorization"}`)
			return
		}
		json.NewEncoder(w).Encode(f.claims)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakePG) provider(t *testing.T, mod func(*plasgate.Config)) *plasgate.Provider {
	cfg := plasgate.Config{BaseURL: f.srv.URL, PrivateKey: privateKey, Secret: xSecret,
		RedirectURI: f.redirectURI(), HTTPClient: f.srv.Client()}
	if mod != nil {
		mod(&cfg)
	}
	p, err := plasgate.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fakePG) request(scope string) verify.Request {
	return verify.Request{PhoneNumber: phone, Device: f.srv.Client(), Interface: "wwan2", Scope: scope}
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

func TestSuccess(t *testing.T) {
	f := newFakePG(t)
	p := f.provider(t, nil)
	var stages []verify.Stage
	req := f.request("")
	req.Progress = func(e verify.Event) error { stages = append(stages, e.Stage); return nil }
	res, err := p.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verified == nil || !*res.Verified || res.PhoneNumberVerified == nil || !*res.PhoneNumberVerified ||
		res.ProviderStatus != "success" || res.MobileID != "15957db0c9ca" || res.Sub != "30f4c8df" || res.Scope != "phone_verify" {
		t.Fatalf("result %+v", res)
	}
	if f.cbHits != 0 {
		t.Fatalf("redirect_uri fetched %d times", f.cbHits)
	}
	if len(res.Trace) != 2 || res.Trace[0].Interface != "wwan2" || res.Trace[1].Status != 302 {
		t.Errorf("trace %+v", res.Trace)
	}
	if fmt.Sprint(stages) != "[device code_received]" {
		t.Errorf("stages %v", stages)
	}
	q := f.authQuery
	if q.Get("private_key") != privateKey || q.Get("login_hint") != "85577696118" || q.Get("phone_number") != "85577696118" ||
		q.Get("redirect_uri") != f.redirectURI() || q.Get("scope") != "phone_verify" || len(q.Get("state")) < 16 {
		t.Errorf("authenticate query %v", q)
	}
	b := f.exchBody
	if f.exchPath != "/ip/ip-auth" || f.exchSecret != xSecret || b["response_type"] != "code" || b["code"] != issuedCode ||
		b["state"] != f.issuedState || b["redirect_uri"] != f.redirectURI() || b["private_key"] != privateKey {
		t.Errorf("exchange %s X-Secret=%q body=%v", f.exchPath, f.exchSecret, b)
	}
	if f.exchQuery.Get("private_key") != "" {
		t.Error("private_key in the exchange query by default")
	}
}

func TestVerifiedForms(t *testing.T) {
	tests := []struct {
		name     string
		status   string
		pnv      any
		verified bool
	}{
		{"string true", "success", "true", true},
		{"bool true", "success", true, true},
		{"string false", "failed", "false", false},
		{"bool false", "success", false, false},
		{"success without the claim", "success", nil, false},
		{"failed but true", "failed", "true", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakePG(t)
			f.claims["status"] = tc.status
			if tc.pnv == nil {
				delete(f.claims, "phone_number_verified")
			} else {
				f.claims["phone_number_verified"] = tc.pnv
			}
			if tc.status == "failed" {
				f.claims["error_description"] = "Please turn off Wi-Fi or use Mobile data network"
			}
			res, err := f.provider(t, nil).Check(context.Background(), f.request(""))
			if err != nil {
				t.Fatal(err)
			}
			if res.Verified == nil || *res.Verified != tc.verified || res.Reason != "" {
				t.Fatalf("result %+v", res)
			}
			if tc.status == "failed" && res.ErrorDescription != "Please turn off Wi-Fi or use Mobile data network" {
				t.Errorf("error_description %q", res.ErrorDescription)
			}
		})
	}
}

func TestErrorEnding(t *testing.T) {
	f := newFakePG(t)
	f.authError = "access_denied"
	res, err := f.provider(t, nil).Check(context.Background(), f.request(""))
	if err != nil {
		t.Fatal(err)
	}
	if res.Verified == nil || *res.Verified || res.Reason != verify.CodeNotMobileIP || !strings.Contains(res.ErrorDescription, "Wi-Fi") {
		t.Fatalf("result %+v", res)
	}
	if f.exchPath != "" || f.cbHits != 0 {
		t.Errorf("exchange %q / callback %d after an error ending", f.exchPath, f.cbHits)
	}
	f.authError = "unauthorized_client"
	_, err = f.provider(t, nil).Check(context.Background(), f.request(""))
	wantCode(t, err, verify.CodeProviderAuthFailed)
	f.authError = "server_error"
	_, err = f.provider(t, nil).Check(context.Background(), f.request(""))
	if e := wantCode(t, err, verify.CodeProviderError); e.ProviderCode != "server_error" || len(e.Trace) != 2 {
		t.Errorf("error %+v", e)
	}
}

func TestStateMismatch(t *testing.T) {
	f := newFakePG(t)
	f.stateMismatch = true
	_, err := f.provider(t, nil).Check(context.Background(), f.request(""))
	wantCode(t, err, verify.CodeBadRedirect)
	if f.exchPath != "" {
		t.Error("exchanged a code whose state did not match")
	}
	res, err := f.provider(t, func(c *plasgate.Config) { c.IgnoreState = true }).Check(context.Background(), f.request(""))
	if err != nil || !*res.Verified {
		t.Fatalf("verify_state false: %v %+v", err, res)
	}
	if f.exchBody["state"] != f.issuedState {
		t.Errorf("exchange sent state %q, want the server's", f.exchBody["state"])
	}
}

func TestHTTPErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*fakePG)
		code string
	}{
		{"exchange 403", func(f *fakePG) { f.exchStatus = 403 }, verify.CodeProviderAuthFailed},
		{"exchange 500", func(f *fakePG) { f.exchStatus = 500 }, verify.CodeProviderError},
		{"exchange 400", func(f *fakePG) { f.exchStatus = 400 }, verify.CodeProviderError},
		{"authenticate 403", func(f *fakePG) { f.auth403 = true }, verify.CodeProviderAuthFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakePG(t)
			tc.set(f)
			_, err := f.provider(t, nil).Check(context.Background(), f.request(""))
			e := wantCode(t, err, tc.code)
			if len(e.Trace) == 0 {
				t.Error("error without the device trace")
			}
		})
	}
}

func TestScopes(t *testing.T) {
	t.Run("mobile_id alone does not decide", func(t *testing.T) {
		f := newFakePG(t)
		f.claims = map[string]any{"status": "success", "sub": "s", "mobile_id": "2d83f2c1"}
		req := f.request("mobile_id")
		req.PhoneNumber = ""
		res, err := f.provider(t, nil).Check(context.Background(), req)
		if err != nil || res.Verified != nil || res.MobileID != "2d83f2c1" {
			t.Fatalf("%v %+v", err, res)
		}
		if f.authQuery.Has("login_hint") || f.authQuery.Get("scope") != "mobile_id" {
			t.Errorf("query %v", f.authQuery)
		}
	})
	t.Run("phone returns the number", func(t *testing.T) {
		f := newFakePG(t)
		f.claims = map[string]any{"status": "success", "sub": "s", "phone_number": "85577696118"}
		res, err := f.provider(t, nil).Check(context.Background(), f.request("ip:phone"))
		if err != nil || res.Verified != nil || res.PhoneNumber != "85577696118" || f.authQuery.Get("login_hint") != "85577696118" {
			t.Fatalf("%v %+v", err, res)
		}
	})
	t.Run("profile claims are live only", func(t *testing.T) {
		f := newFakePG(t)
		f.claims["given_name"] = "Teak"
		f.claims["address"] = map[string]any{"locality": "Phnom Penh City"}
		res, err := f.provider(t, nil).Check(context.Background(), f.request("mobile_id  phone_verify profile"))
		if err != nil || !*res.Verified || res.Claims["given_name"] != "Teak" || res.Scope != "mobile_id phone_verify profile" {
			t.Fatalf("%v %+v", err, res)
		}
		if j, _ := json.Marshal(res.ForJournal()); strings.Contains(string(j), "Teak") || strings.Contains(string(j), "Phnom") {
			t.Errorf("journal copy holds KYC data: %s", j)
		}
		if strings.Contains(res.String(), "Teak") {
			t.Errorf("String() holds KYC data")
		}
	})
	t.Run("phone_verify needs a number", func(t *testing.T) {
		f := newFakePG(t)
		req := f.request("phone_verify")
		req.PhoneNumber = ""
		_, err := f.provider(t, nil).Check(context.Background(), req)
		wantCode(t, err, verify.CodeInvalidPhoneNumber)
		if f.authQuery != nil {
			t.Error("authenticate called without a number")
		}
	})
	t.Run("unknown scope", func(t *testing.T) {
		f := newFakePG(t)
		_, err := f.provider(t, nil).Check(context.Background(), f.request("openid email"))
		wantCode(t, err, verify.CodeProviderError)
		if _, err := plasgate.New(plasgate.Config{PrivateKey: "k", Secret: "s", RedirectURI: "https://x/cb", Scope: "openid"}); err == nil {
			t.Error("New accepted a scope without a custom scope")
		}
	})
}

func TestExchangeOptions(t *testing.T) {
	f := newFakePG(t)
	p := f.provider(t, func(c *plasgate.Config) { c.PrivateKeyInQuery = true; c.ExchangePath = "/ip/check-info" })
	res, err := p.Check(context.Background(), f.request(""))
	if err != nil || !*res.Verified {
		t.Fatalf("%v %+v", err, res)
	}
	if f.exchPath != "/ip/check-info" || f.exchQuery.Get("private_key") != privateKey {
		t.Errorf("exchange %s query %v", f.exchPath, f.exchQuery)
	}
	if _, ok := f.exchBody["private_key"]; ok {
		t.Error("private_key in the body too")
	}
}

func TestConfig(t *testing.T) {
	for _, cfg := range []plasgate.Config{
		{},
		{PrivateKey: "k", Secret: "s"},
		{PrivateKey: "k", Secret: "s", RedirectURI: "callback"},
		{PrivateKey: "k", Secret: "s", RedirectURI: "https://x/cb", BaseURL: "http://plain"},
		{PrivateKey: "k", Secret: "s", RedirectURI: "https://x/cb", ExchangePath: "ip-auth"},
	} {
		if _, err := plasgate.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := plasgate.New(plasgate.Config{PrivateKey: "k", Secret: "s", RedirectURI: "https://x/cb"}); err != nil {
		t.Errorf("minimal config: %v", err)
	}
}

// TestNoSecrets runs a successful and a failing check and looks for the
// private key, X-Secret, code, state and session_state in everything they
// produce.
func TestNoSecrets(t *testing.T) {
	f := newFakePG(t)
	res, err := f.provider(t, nil).Check(context.Background(), f.request(""))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{privateKey, xSecret, issuedCode, sessionState, f.issuedState, url.QueryEscape(xSecret)}
	check := func(what, s string) {
		t.Helper()
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("%s shows %q: %s", what, sec, s)
			}
		}
	}
	j, _ := json.Marshal(res)
	tr, _ := json.Marshal(res.Trace)
	check("result", fmt.Sprintf("%s %s %s %+v", j, tr, res, *res))

	f.stateMismatch = true
	_, err = f.provider(t, nil).Check(context.Background(), f.request(""))
	e := wantCode(t, err, verify.CodeBadRedirect)
	tr, _ = json.Marshal(e.Trace)
	secrets = append(secrets, f.issuedState)
	check("error", fmt.Sprintf("%v %s %+v", err, tr, *e))
}
