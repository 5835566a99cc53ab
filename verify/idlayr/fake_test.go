package idlayr_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simproof/simproof/verify/idlayr"
)

const (
	testClientID = "client-7d3f"
	testSecret   = "s3cret+/=:Zq" // every character x/oauth2 would escape
)

// canned is one scripted answer.
type canned struct {
	status int
	body   string
	header map[string]string
}

// fakeAPI is a small IDlayr: token, v0.1/v0.2 checks, the check URL (two
// hops: the API, then an "operator" path) and coverage. Scripted answers
// (script[op]) are served first, in order; then the default behaviour.
type fakeAPI struct {
	t   testing.TB
	srv *httptest.Server

	mu         sync.Mutex
	script     map[string][]canned // "token", "create", "get", "device", "patch", "coverage"
	calls      map[string]int
	tokens     map[string]string // token → scope
	nextTok    int
	expiresIn  int
	authHeader []string // Authorization of each token request
	tokenForms []url.Values
	checks     map[string]*fakeCheck
	match      bool
	v02JSON    bool // v0.2 device step ends in a JSON body even with a redirect_url
	pending    int  // GETs answered PENDING after the device step
	ttl        int
	lastPatch  struct{ contentType, body string }
}

type fakeCheck struct {
	id, phone, version, redirectURL, code string
	device                                bool
	polls                                 int
}

func newFake(t testing.TB) *fakeAPI {
	f := &fakeAPI{t: t, script: map[string][]canned{}, calls: map[string]int{}, tokens: map[string]string{},
		checks: map[string]*fakeCheck{}, match: true, expiresIn: 3600, ttl: 60}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) push(op string, c ...canned) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script[op] = append(f.script[op], c...)
}

func (f *fakeAPI) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// scripted serves the next canned answer for op, if any. Called locked.
func (f *fakeAPI) scripted(w http.ResponseWriter, op string) bool {
	f.calls[op]++
	q := f.script[op]
	if len(q) == 0 {
		return false
	}
	c := q[0]
	f.script[op] = q[1:]
	ct := "application/problem+json"
	if c.status < 300 {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	for k, v := range c.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(c.status)
	io.WriteString(w, c.body)
	return true
}

func problem(status int, code string) canned {
	return canned{status: status, body: fmt.Sprintf(
		`{"type":"https://developer.idlayr.com/docs/reference/api-errors#%s","title":"%s","status":%d,"detail":"%s"}`,
		code, http.StatusText(status), status, code)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) authorised(w http.ResponseWriter, r *http.Request, scope string) bool {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if s, ok := f.tokens[tok]; !ok || s != scope {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"status":401,"title":"Unauthorized"}`)
		return false
	}
	return true
}

func (f *fakeAPI) checkJSON(c *fakeCheck, status string) map[string]any {
	m := map[string]any{
		"check_id": c.id, "status": status, "ttl": f.ttl, "created_at": time.Now().UTC().Format(time.RFC3339),
		"_links": map[string]any{
			"self":      map[string]string{"href": f.srv.URL + "/phone_check/" + c.version + "/checks/" + c.id},
			"check_url": map[string]string{"href": f.srv.URL + "/device/" + c.id + "/redirect"},
		},
	}
	if status == "COMPLETED" {
		m["match"] = f.match
	}
	return m
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := r.URL.Path
	switch {
	case p == "/oauth2/v1/token":
		f.authHeader = append(f.authHeader, r.Header.Get("Authorization"))
		r.ParseForm()
		f.tokenForms = append(f.tokenForms, r.PostForm)
		if f.scripted(w, "token") {
			return
		}
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(testClientID+":"+testSecret))
		if r.Header.Get("Authorization") != want {
			writeJSON(w, 401, map[string]string{"error": "invalid_client"})
			return
		}
		f.nextTok++
		tok := fmt.Sprintf("at-%d-2YotnFZFEjr1zCsicMWpAA", f.nextTok)
		f.tokens[tok] = r.PostForm.Get("scope")
		writeJSON(w, 200, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": f.expiresIn,
			"scope": r.PostForm.Get("scope")})

	case r.Method == "POST" && (p == "/phone_check/v0.1/checks" || p == "/phone_check/v0.2/checks"):
		if !f.authorised(w, r, "phone_check") || f.scripted(w, "create") {
			return
		}
		var body struct {
			Phone       string `json:"phone_number"`
			RedirectURL string `json:"redirect_url"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || strings.HasPrefix(body.Phone, "+") {
			writeJSON(w, 400, map[string]string{"error_code": "phone_format_invalid"})
			return
		}
		c := &fakeCheck{id: fmt.Sprintf("c69bc0e6-%04d", len(f.checks)+1), phone: body.Phone,
			version: strings.Split(p, "/")[2], redirectURL: body.RedirectURL}
		f.checks[c.id] = c
		writeJSON(w, 201, f.checkJSON(c, "ACCEPTED"))

	case strings.HasPrefix(p, "/device/"):
		// The API's hop: straight on to the "operator".
		if f.scripted(w, "device") {
			return
		}
		id := strings.Split(p, "/")[2]
		w.Header().Set("Location", "/operator/"+id+"?msisdn=447700900123")
		w.WriteHeader(http.StatusFound)

	case strings.HasPrefix(p, "/operator/"):
		id := strings.TrimPrefix(p, "/operator/")
		c := f.checks[id]
		if c == nil {
			http.NotFound(w, r)
			return
		}
		c.device = true
		if c.version == "v0.1" {
			io.WriteString(w, "OK")
			return
		}
		c.code = "c0de-" + id + "-9f8e7d6c5b4a"
		if c.redirectURL != "" && !f.v02JSON {
			w.Header().Set("Location", c.redirectURL+"?check_id="+c.id+"&code="+c.code)
			w.WriteHeader(http.StatusFound)
			return
		}
		writeJSON(w, 200, map[string]string{"check_id": c.id, "code": c.code})

	case r.Method == "GET" && strings.HasPrefix(p, "/phone_check/"):
		if !f.authorised(w, r, "phone_check") || f.scripted(w, "get") {
			return
		}
		c := f.checks[p[strings.LastIndex(p, "/")+1:]]
		if c == nil {
			writeJSON(w, 404, map[string]string{"error_code": "check_not_found"})
			return
		}
		status := "ACCEPTED"
		if c.device {
			c.polls++
			status = "PENDING"
			if c.polls > f.pending {
				status = "COMPLETED"
			}
		}
		writeJSON(w, 200, f.checkJSON(c, status))

	case r.Method == "PATCH" && strings.HasPrefix(p, "/phone_check/v0.2/checks/"):
		if !f.authorised(w, r, "phone_check") || f.scripted(w, "patch") {
			return
		}
		b, _ := io.ReadAll(r.Body)
		f.lastPatch.contentType, f.lastPatch.body = r.Header.Get("Content-Type"), string(b)
		c := f.checks[strings.TrimPrefix(p, "/phone_check/v0.2/checks/")]
		var ops []map[string]string
		json.Unmarshal(b, &ops)
		if c == nil || len(ops) != 1 || ops[0]["op"] != "add" || ops[0]["path"] != "/code" || ops[0]["value"] != c.code {
			writeJSON(w, 404, map[string]string{"error_code": "check_not_found"})
			return
		}
		writeJSON(w, 200, f.checkJSON(c, "COMPLETED"))

	case p == "/coverage/v0.1/device_ip":
		if !f.authorised(w, r, "coverage") || f.scripted(w, "coverage") {
			return
		}
		writeJSON(w, 200, map[string]any{"country_code": "GB", "network_id": "23410", "network_name": "O2",
			"products": []map[string]string{{"product_id": "PCK", "product_name": "Phone Check"}}})

	default:
		http.NotFound(w, r)
	}
}

// provider returns an IDlayr provider talking to the fake, with fast polls.
func (f *fakeAPI) provider(t testing.TB, mod func(*idlayr.Config)) *idlayr.Provider {
	cfg := idlayr.Config{
		Credentials:  idlayr.Credentials{ClientID: testClientID, ClientSecret: testSecret, DataResidency: "eu"},
		BaseURL:      f.srv.URL,
		HTTPClient:   f.srv.Client(),
		PollInterval: time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := idlayr.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
