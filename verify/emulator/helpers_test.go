package emulator_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simproof/simproof/verify/emulator"
)

// Loopback stands in for the carrier: 127.0.0.1 and .2 are subscribers,
// .3 is a mobile address the operator cannot name, .9 is "Wi-Fi".
const (
	numA = "447700900123" // 127.0.0.1
	numB = "447700900124" // 127.0.0.2
)

var (
	srcA        = netip.MustParseAddr("127.0.0.1")
	srcB        = netip.MustParseAddr("127.0.0.2")
	srcUnknown  = netip.MustParseAddr("127.0.0.3")
	srcNotMobil = netip.MustParseAddr("127.0.0.9")
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     *testing.T
	e     *emulator.Emulator
	clock *fakeClock
	api   *http.Client // server side
}

func start(t *testing.T, mod func(*emulator.Config)) *env {
	t.Helper()
	clock := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	cfg := emulator.Config{
		Subscribers:  map[netip.Addr]string{srcA: numA, srcB: numB},
		MobileRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/30")},
		Now:          clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	e, err := emulator.StartLoopback(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return &env{t: t, e: e, clock: clock, api: e.Client()}
}

// device is a client whose connections leave from src, as a device on the
// carrier would; it keeps cookies and does not follow redirects.
func (v *env) device(src netip.Addr) *http.Client {
	c := v.e.Client()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IP(src.AsSlice())}, Timeout: 5 * time.Second}
	c.Transport.(*http.Transport).DialContext = d.DialContext
	return c
}

type hop struct {
	URL      *url.URL
	Status   int
	Location string // raw header
	Cookie   bool   // response set a cookie
	Body     []byte
	Header   http.Header
}

// walk follows Locations by hand from start, at most max requests, stopping
// at a non-redirect or at a Location outside the emulator (a redirect_uri).
func (v *env) walk(c *http.Client, start string, max int) []hop {
	v.t.Helper()
	var hops []hop
	u, err := url.Parse(start)
	if err != nil {
		v.t.Fatal(err)
	}
	for range max {
		resp, err := c.Get(u.String())
		if err != nil {
			v.t.Fatalf("GET %s: %v", u.Redacted(), err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		h := hop{URL: u, Status: resp.StatusCode, Location: resp.Header.Get("Location"), Cookie: len(resp.Cookies()) > 0, Body: body, Header: resp.Header}
		hops = append(hops, h)
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			return hops
		}
		next, err := u.Parse(h.Location)
		if err != nil {
			v.t.Fatalf("bad Location %q: %v", h.Location, err)
		}
		if !v.ours(next) {
			return hops
		}
		u = next
	}
	return hops
}

func (v *env) ours(u *url.URL) bool {
	for _, r := range []emulator.Role{emulator.RoleIDlayr, emulator.RolePlasGate, emulator.RoleOperator} {
		if strings.HasPrefix(u.String(), v.e.BaseURL(r)+"/") {
			return true
		}
	}
	return false
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

func (v *env) do(method, u string, hdr map[string]string, body []byte) (int, http.Header, map[string]any) {
	v.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, u, bytes.NewReader(body))
	if err != nil {
		v.t.Fatal(err)
	}
	for k, val := range hdr {
		req.Header.Set(k, val)
	}
	resp, err := v.api.Do(req)
	if err != nil {
		v.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			m = map[string]any{"_raw": string(raw)}
		}
	}
	return resp.StatusCode, resp.Header, m
}

func (v *env) token(scope string) string {
	v.t.Helper()
	st, _, m := v.do("POST", v.e.BaseURL(emulator.RoleIDlayr)+"/oauth2/v1/token",
		map[string]string{"Authorization": basic(emulator.DefaultClientID, emulator.DefaultClientSecret), "Content-Type": "application/x-www-form-urlencoded"},
		[]byte("grant_type=client_credentials&scope="+scope))
	if st != 200 {
		v.t.Fatalf("token: %d %v", st, m)
	}
	return m["access_token"].(string)
}

func (v *env) create(tok, version, phone, redirectURL string) (int, http.Header, map[string]any) {
	v.t.Helper()
	body := map[string]string{"phone_number": phone}
	if redirectURL != "" {
		body["redirect_url"] = redirectURL
	}
	b, _ := json.Marshal(body)
	return v.do("POST", v.e.BaseURL(emulator.RoleIDlayr)+"/phone_check/"+version+"/checks",
		map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}, b)
}

func (v *env) mustCreate(tok, version, phone, redirectURL string) (id, checkURL string) {
	v.t.Helper()
	st, _, m := v.create(tok, version, phone, redirectURL)
	if st != http.StatusCreated {
		v.t.Fatalf("create: %d %v", st, m)
	}
	return m["check_id"].(string), m["_links"].(map[string]any)["check_url"].(map[string]any)["href"].(string)
}

func (v *env) get(tok, version, id string) (int, http.Header, map[string]any) {
	v.t.Helper()
	return v.do("GET", v.e.BaseURL(emulator.RoleIDlayr)+"/phone_check/"+version+"/checks/"+id,
		map[string]string{"Authorization": "Bearer " + tok}, nil)
}

func (v *env) patch(tok, id, code, ctype string) (int, map[string]any) {
	v.t.Helper()
	b, _ := json.Marshal([]map[string]string{{"op": "add", "path": "/code", "value": code}})
	st, _, m := v.do("PATCH", v.e.BaseURL(emulator.RoleIDlayr)+"/phone_check/v0.2/checks/"+id,
		map[string]string{"Authorization": "Bearer " + tok, "Content-Type": ctype}, b)
	return st, m
}

func last(h []hop) hop { return h[len(h)-1] }

func jsonBody(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return m
}
