package emulator_test

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/simproof/simproof/verify/emulator"
)

func TestTokenClientAuth(t *testing.T) {
	v := start(t, nil)
	tokURL := v.e.BaseURL(emulator.RoleIDlayr) + "/oauth2/v1/token"
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	id, secret := emulator.DefaultClientID, emulator.DefaultClientSecret
	cases := []struct {
		name     string
		auth     string
		body     string
		status   int
		kind     string
		oauthErr string
	}{
		{"seed raw base64", basic(id, secret), "grant_type=client_credentials&scope=phone_check", 200, "basic", ""},
		{"RFC 6749 form-escaped", basic(url.QueryEscape(id), url.QueryEscape(secret)), "grant_type=client_credentials&scope=phone_check", 200, "basic-form-escaped", ""},
		{"client_secret_post", "", "grant_type=client_credentials&scope=coverage&client_id=" + url.QueryEscape(id) + "&client_secret=" + url.QueryEscape(secret), 200, "client_secret_post", ""},
		{"wrong secret", basic(id, "nope"), "grant_type=client_credentials", 401, "basic", "invalid_client"},
		{"no credentials", "", "grant_type=client_credentials", 401, "", "invalid_client"},
		{"wrong grant", basic(id, secret), "grant_type=password", 400, "basic", "unsupported_grant_type"},
		{"unknown scope", basic(id, secret), "grant_type=client_credentials&scope=admin", 400, "basic", "invalid_scope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v.e.ResetObservations()
			h := map[string]string{"Content-Type": form["Content-Type"]}
			if c.auth != "" {
				h["Authorization"] = c.auth
			}
			st, hdr, m := v.do("POST", tokURL, h, []byte(c.body))
			if st != c.status {
				t.Fatalf("status %d, want %d: %v", st, c.status, m)
			}
			if rq := v.e.Requests(); len(rq) != 1 || rq[0].AuthKind != c.kind {
				t.Errorf("observed auth kind %+v, want %q", rq, c.kind)
			}
			if c.status != 200 {
				if ct := hdr.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("content type %q", ct)
				}
				if m["error"] != c.oauthErr {
					t.Errorf("error %v, want %s", m["error"], c.oauthErr)
				}
				return
			}
			if m["token_type"] != "bearer" || m["expires_in"].(float64) != 3600 || m["access_token"] == "" {
				t.Errorf("token response %v", m)
			}
			if v.e.Stats().TokensIssued == 0 {
				t.Error("TokensIssued not counted")
			}
		})
	}
}

// golang.org/x/oauth2 escapes the credentials before Basic-encoding them
// (RFC 6749 §2.3.1); the emulator must accept that as well as the seed's form.
func TestTokenWithXOAuth2(t *testing.T) {
	v := start(t, nil)
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		cc := clientcredentials.Config{
			ClientID: emulator.DefaultClientID, ClientSecret: emulator.DefaultClientSecret,
			TokenURL: v.e.BaseURL(emulator.RoleIDlayr) + "/oauth2/v1/token", Scopes: []string{"phone_check"}, AuthStyle: style,
		}
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, v.api)
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatalf("style %d: %v", style, err)
		}
		if tok.AccessToken == "" || tok.Expiry.IsZero() {
			t.Errorf("style %d: token %+v", style, tok)
		}
	}
	kinds := map[string]bool{}
	for _, r := range v.e.Requests() {
		kinds[r.AuthKind] = true
	}
	if !kinds["basic-form-escaped"] || !kinds["client_secret_post"] {
		t.Errorf("auth kinds seen %v", kinds)
	}
}

func TestTokenExpiryRevocationAndScope(t *testing.T) {
	v := start(t, func(c *emulator.Config) { c.TokenTTL = 10 * time.Minute })
	tok := v.token("phone_check")
	if st, _, _ := v.create(tok, "v0.1", numA, ""); st != 201 {
		t.Fatalf("fresh token: %d", st)
	}
	v.clock.Advance(10 * time.Minute)
	st, hdr, m := v.create(tok, "v0.1", numA, "")
	if st != 401 || m["error_code"] != "unauthorized" || !strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("expired token: %d %v %v", st, m, hdr)
	}
	tok = v.token("phone_check")
	v.e.RevokeTokens()
	if st, _, _ := v.create(tok, "v0.1", numA, ""); st != 401 {
		t.Fatalf("revoked token: %d", st)
	}
	cov := v.token("coverage")
	if st, _, m := v.create(cov, "v0.1", numA, ""); st != 403 || m["error_code"] != "insufficient_scope" {
		t.Fatalf("coverage token on checks: %d %v", st, m)
	}
	if st, _, _ := v.create("", "v0.1", numA, ""); st != 401 {
		t.Fatalf("no token: %d", st)
	}
	if got := v.e.Stats().ChecksCreated; got != 1 {
		t.Errorf("ChecksCreated %d, want 1 (refused requests create nothing)", got)
	}
}

func TestCreateValidation(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")
	base := v.e.BaseURL(emulator.RoleIDlayr)
	auth := map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
	for _, c := range []struct {
		name, path, ctype, body string
		status                  int
		code                    string
	}{
		{"plus sign", "/phone_check/v0.1/checks", "", `{"phone_number":"+447700900123"}`, 400, "phone_format_invalid"},
		{"leading zero", "/phone_check/v0.1/checks", "", `{"phone_number":"07700900123"}`, 400, "phone_format_invalid"},
		{"too short", "/phone_check/v0.1/checks", "", `{"phone_number":"44770"}`, 400, "phone_format_invalid"},
		{"missing", "/phone_check/v0.1/checks", "", `{}`, 400, "phone_format_invalid"},
		{"malformed JSON", "/phone_check/v0.1/checks", "", `{"phone_number":`, 400, "bad_request"},
		{"wrong content type", "/phone_check/v0.1/checks", "text/plain", `{"phone_number":"447700900123"}`, 415, "bad_request"},
		{"bad redirect_url", "/phone_check/v0.2/checks", "", `{"phone_number":"447700900123","redirect_url":"/cb"}`, 400, "redirect_url_invalid"},
		{"oversized body", "/phone_check/v0.1/checks", "", `{"phone_number":"447700900123","x":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "body_too_large"},
		{"unknown version", "/phone_check/v9/checks", "", `{"phone_number":"447700900123"}`, 404, "not_found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{}
			for k, val := range auth {
				h[k] = val
			}
			if c.ctype != "" {
				h["Content-Type"] = c.ctype
			}
			st, hdr, m := v.do("POST", base+c.path, h, []byte(c.body))
			if st != c.status || m["error_code"] != c.code {
				t.Fatalf("got %d %v, want %d %s", st, m, c.status, c.code)
			}
			if hdr.Get("Content-Type") != "application/problem+json" || m["type"] != emulator.ProblemTypeBase+c.code ||
				m["status"].(float64) != float64(c.status) || m["title"] == "" || m["detail"] == "" {
				t.Errorf("not a full problem+json: %v %v", hdr, m)
			}
		})
	}
	if st, _, m := v.get(tok, "v0.1", "no-such-check"); st != 404 || m["error_code"] != "check_not_found" {
		t.Errorf("unknown check: %d %v", st, m)
	}
	if v.e.Stats().ChecksCreated != 0 {
		t.Error("an invalid request created a check")
	}
}

func TestCreateResponseShape(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")
	st, hdr, m := v.create(tok, "v0.1", numA, "")
	if st != 201 {
		t.Fatal(st, m)
	}
	id := m["check_id"].(string)
	links := m["_links"].(map[string]any)
	self := links["self"].(map[string]any)["href"].(string)
	checkURL := links["check_url"].(map[string]any)["href"].(string)
	base := v.e.BaseURL(emulator.RoleIDlayr)
	if m["status"] != "ACCEPTED" || m["ttl"].(float64) != 60 || m["charge_currency"] != "API" || m["created_at"] == "" ||
		self != base+"/phone_check/v0.1/checks/"+id || checkURL != self+"/redirect" || hdr.Get("Location") != self {
		t.Errorf("create response %v (Location %q)", m, hdr.Get("Location"))
	}
	if _, ok := m["match"]; ok {
		t.Error("match present before COMPLETED")
	}
	if !strings.HasPrefix(checkURL, "https://") {
		t.Errorf("check_url %s is not https", checkURL)
	}
}

// The real chain: IDlayr (https) → operator (plain http, sets a cookie) →
// operator hop 2 (relative Location, needs the cookie) → IDlayr completion.
func TestV01ChainAndMatch(t *testing.T) {
	cases := []struct {
		name   string
		src    netip.Addr
		phone  string
		match  bool
		status string
	}{
		{"subscriber A is A", srcA, numA, true, "COMPLETED"},
		{"subscriber B is B", srcB, numB, true, "COMPLETED"},
		{"A claims B's number", srcA, numB, false, "COMPLETED"},
		{"mobile but unidentified", srcUnknown, numA, false, "COMPLETED"},
	}
	v := start(t, nil)
	tok := v.token("phone_check")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v.e.ResetObservations()
			id, checkURL := v.mustCreate(tok, "v0.1", c.phone, "")
			hops := v.walk(v.device(c.src), checkURL, 10)
			if len(hops) != 4 {
				t.Fatalf("%d hops, want 4: %+v", len(hops), hops)
			}
			opBase := v.e.BaseURL(emulator.RoleOperator)
			if hops[0].Status != 302 || !strings.HasPrefix(hops[0].Location, opBase+"/op/idlayr/start?") || !strings.HasPrefix(opBase, "http://") {
				t.Errorf("hop 1 %d → %s", hops[0].Status, hops[0].Location)
			}
			if hops[1].Status != 302 || !hops[1].Cookie || strings.Contains(hops[1].Location, "://") || strings.HasPrefix(hops[1].Location, "/") {
				t.Errorf("hop 2 should set a cookie and give a path-relative Location: %d %v %q", hops[1].Status, hops[1].Cookie, hops[1].Location)
			}
			if hops[2].Status != 302 || !strings.HasPrefix(hops[2].Location, v.e.BaseURL(emulator.RoleIDlayr)+"/phone_check/v0.1/checks/"+id+"/complete?") {
				t.Errorf("hop 3 %d → %s", hops[2].Status, hops[2].Location)
			}
			if hops[3].Status != 200 || jsonBody(t, hops[3].Body)["status"] != "ok" {
				t.Errorf("hop 4 %d %s", hops[3].Status, hops[3].Body)
			}
			st, _, m := v.get(tok, "v0.1", id)
			if st != 200 || m["status"] != c.status || m["match"] != c.match {
				t.Errorf("poll: %d %v, want %s match %v", st, m, c.status, c.match)
			}
			// Observations: roles, TLS, source address and the cookie.
			var roles []string
			for _, r := range v.e.Requests() {
				if r.Method != "GET" || !strings.Contains(r.Path, "/op/") && !strings.Contains(r.Path, "/"+id+"/") {
					continue
				}
				roles = append(roles, r.Role.String())
				if r.Source != c.src {
					t.Errorf("%s seen from %s, want %s", r.Path, r.Source, c.src)
				}
				if r.TLS != (r.Role != emulator.RoleOperator) {
					t.Errorf("%s TLS=%v", r.Path, r.TLS)
				}
				if strings.HasSuffix(r.Path, "/hop2") && !r.Cookie {
					t.Error("hop2 seen without cookie")
				}
			}
			if got := strings.Join(roles, ","); got != "idlayr,operator,operator,idlayr" {
				t.Errorf("roles %s", got)
			}
		})
	}
}

func TestNotMobileSource(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")
	id, checkURL := v.mustCreate(tok, "v0.1", numA, "")
	hops := v.walk(v.device(srcNotMobil), checkURL, 10)
	h := last(hops)
	if len(hops) != 1 || h.Status != 412 || jsonBody(t, h.Body)["error_code"] != "not_mobile_ip" || h.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("hops %+v", hops)
	}
	_, _, m := v.get(tok, "v0.1", id)
	if m["status"] != "ERROR" || m["error_code"] != "not_mobile_ip" {
		t.Errorf("check after 412: %v", m)
	}
	if h := v.walk(v.device(srcA), checkURL, 10); last(h).Status != 410 {
		t.Errorf("check URL after ERROR: %d", last(h).Status)
	}
}

func TestOperatorRequiresCookie(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")
	id, checkURL := v.mustCreate(tok, "v0.1", numA, "")
	c := v.device(srcA)
	c.Jar = nil // a client that drops cookies
	hops := v.walk(c, checkURL, 10)
	if len(hops) != 3 || last(hops).Status != 400 || !strings.HasSuffix(last(hops).URL.Path, "/hop2") {
		t.Fatalf("hops %+v", hops)
	}
	var sawNoCookie bool
	for _, r := range v.e.Requests() {
		if strings.HasSuffix(r.Path, "/hop2") && !r.Cookie && r.Status == 400 {
			sawNoCookie = true
		}
	}
	if !sawNoCookie {
		t.Error("observation of the cookie-less hop missing")
	}
	if cv, _ := v.e.Check(id); cv.DeviceDone || cv.Status != "PENDING" {
		t.Errorf("check %+v after a failed chain", cv)
	}
	// The device may retry the whole chain with cookies.
	if h := v.walk(v.device(srcA), checkURL, 10); last(h).Status != 200 {
		t.Fatalf("retry: %+v", h)
	}
	if _, _, m := v.get(tok, "v0.1", id); m["match"] != true {
		t.Errorf("after retry %v", m)
	}
}

func TestV02Endings(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")

	t.Run("JSON body without redirect_url", func(t *testing.T) {
		id, checkURL := v.mustCreate(tok, "v0.2", numA, "")
		if !strings.Contains(checkURL, "/phone_check/v0.2/checks/"+id+"/redirect") {
			t.Fatalf("check_url %s", checkURL)
		}
		hops := v.walk(v.device(srcA), checkURL, 10)
		h := last(hops)
		body := jsonBody(t, h.Body)
		code, _ := body["code"].(string)
		if len(hops) != 4 || h.Status != 200 || body["check_id"] != id || code == "" {
			t.Fatalf("ending %d %v", h.Status, body)
		}
		if _, _, m := v.get(tok, "v0.2", id); m["status"] != "PENDING" {
			t.Errorf("before PATCH: %v", m)
		}
		if st, m := v.patch(tok, id, code, "application/json"); st != 415 {
			t.Errorf("PATCH with application/json: %d %v", st, m)
		}
		if st, m := v.patch(tok, id, "wrong", "application/json-patch+json"); st != 404 || m["error_code"] != "check_not_found" {
			t.Errorf("wrong code: %d %v", st, m)
		}
		st, m := v.patch(tok, id, code, "application/json-patch+json")
		if st != 200 || m["status"] != "COMPLETED" || m["match"] != true {
			t.Fatalf("PATCH: %d %v", st, m)
		}
		if st, _ := v.patch(tok, id, code, "application/json-patch+json"); st != 404 {
			t.Errorf("second PATCH with the same code: %d", st)
		}
		if _, _, m := v.get(tok, "v0.2", id); m["status"] != "COMPLETED" || m["match"] != true {
			t.Errorf("after PATCH: %v", m)
		}
	})

	t.Run("302 to redirect_url", func(t *testing.T) {
		const cb = "https://app.example/callback?keep=1"
		id, checkURL := v.mustCreate(tok, "v0.2", numB, cb)
		hops := v.walk(v.device(srcA), checkURL, 10) // A's SIM claiming B's number
		h := last(hops)
		loc, err := url.Parse(h.Location)
		if err != nil || h.Status != 302 || loc.Host != "app.example" || loc.Path != "/callback" {
			t.Fatalf("ending %d %q", h.Status, h.Location)
		}
		q := loc.Query()
		if q.Get("keep") != "1" || q.Get("check_id") != id || q.Get("code") == "" || q.Has("error") {
			t.Fatalf("redirect query %v", q)
		}
		st, m := v.patch(tok, id, q.Get("code"), "application/json-patch+json")
		if st != 200 || m["status"] != "COMPLETED" || m["match"] != false {
			t.Fatalf("PATCH: %d %v", st, m)
		}
	})

	t.Run("error ending to redirect_url", func(t *testing.T) {
		id, checkURL := v.mustCreate(tok, "v0.2", numA, "https://app.example/cb")
		hops := v.walk(v.device(srcNotMobil), checkURL, 10)
		h := last(hops)
		loc, _ := url.Parse(h.Location)
		if len(hops) != 1 || h.Status != 302 || loc.Query().Get("error") != "not_mobile_ip" ||
			loc.Query().Get("error_description") == "" || loc.Query().Get("check_id") != id || loc.Query().Has("code") {
			t.Fatalf("ending %d %q", h.Status, h.Location)
		}
		if _, _, m := v.get(tok, "v0.2", id); m["status"] != "ERROR" || m["error_code"] != "not_mobile_ip" {
			t.Errorf("check %v", m)
		}
	})

	t.Run("code expires with the check", func(t *testing.T) {
		id, checkURL := v.mustCreate(tok, "v0.2", numA, "")
		code := jsonBody(t, last(v.walk(v.device(srcA), checkURL, 10)).Body)["code"].(string)
		v.clock.Advance(61 * time.Second)
		st, m := v.patch(tok, id, code, "application/json-patch+json")
		if st != 200 || m["status"] != "EXPIRED" {
			t.Fatalf("late PATCH: %d %v", st, m)
		}
	})
}

func TestCoverage(t *testing.T) {
	v := start(t, nil)
	cov := v.token("coverage")
	for _, path := range []string{"/coverage/v0.1/device_ip", "/public/coverage/v0.1/device_ip"} {
		req, _ := http.NewRequest("GET", v.e.BaseURL(emulator.RoleIDlayr)+path, nil)
		req.Header.Set("Authorization", "Bearer "+cov)
		resp, err := v.device(srcB).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		b := make([]byte, 4096)
		n, _ := resp.Body.Read(b)
		resp.Body.Close()
		m = jsonBody(t, b[:n])
		prods, _ := m["products"].([]any)
		if resp.StatusCode != 200 || m["mobile_data"] != true || m["country_code"] != "GB" || m["network_id"] == "" ||
			len(prods) != 1 || prods[0].(map[string]any)["product_name"] != "Phone Check" {
			t.Errorf("%s: %d %v", path, resp.StatusCode, m)
		}
	}
	req, _ := http.NewRequest("GET", v.e.BaseURL(emulator.RoleIDlayr)+"/coverage/v0.1/device_ip", nil)
	req.Header.Set("Authorization", "Bearer "+cov)
	resp, err := v.device(srcNotMobil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 412 {
		t.Errorf("non-mobile coverage: %d", resp.StatusCode)
	}
	pc := v.token("phone_check")
	if st, _, _ := v.do("GET", v.e.BaseURL(emulator.RoleIDlayr)+"/coverage/v0.1/device_ip", map[string]string{"Authorization": "Bearer " + pc}, nil); st != 403 {
		t.Errorf("phone_check token on coverage: %d", st)
	}
	if got := v.e.Stats().CoverageAnswered; got != 2 {
		t.Errorf("CoverageAnswered %d", got)
	}
}
