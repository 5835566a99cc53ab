package redirect_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/redirect"
)

// hits records what each path of a test server saw.
type hits struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (h *hits) add(r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reqs = append(h.reqs, r.Clone(context.Background()))
}

func (h *hits) all() []*http.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*http.Request(nil), h.reqs...)
}

// pair starts an https server and a plain-http server on loopback, returning
// a client that trusts the https one (httptest's TLS servers share one
// certificate, so it trusts every TLS server of the test).
func pair(t *testing.T, tlsH, plainH http.Handler) (*httptest.Server, *httptest.Server, *http.Client) {
	t.Helper()
	s := httptest.NewTLSServer(tlsH)
	t.Cleanup(s.Close)
	var p *httptest.Server
	if plainH != nil {
		p = httptest.NewServer(plainH)
		t.Cleanup(p.Close)
	}
	return s, p, s.Client()
}

func asVerifyError(t *testing.T, err error, code string) *verify.Error {
	t.Helper()
	var e *verify.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *verify.Error", err, err)
	}
	if e.Code != code {
		t.Fatalf("code = %q, want %q (%v)", e.Code, code, err)
	}
	return e
}

func TestChainCookiesRelativeAndPlainHTTPHop(t *testing.T) {
	var plainURL, tlsURL string
	var seen hits
	tlsMux := http.NewServeMux()
	tlsMux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		seen.add(r)
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "c00kie-value", Path: "/"})
		w.Header().Set("Location", "step two") // relative, with a raw space
		w.WriteHeader(http.StatusFound)
	})
	tlsMux.HandleFunc("/step%20two", func(w http.ResponseWriter, r *http.Request) {
		seen.add(r)
		if c, err := r.Cookie("sid"); err != nil || c.Value != "c00kie-value" {
			http.Error(w, "no cookie", http.StatusForbidden)
			return
		}
		w.Header().Set("Location", plainURL+"/op?msisdn=447700900123")
		w.WriteHeader(http.StatusMovedPermanently)
	})
	tlsMux.HandleFunc("/done", func(w http.ResponseWriter, r *http.Request) {
		seen.add(r)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		io.WriteString(w, `{"ok":true}`)
	})
	plainMux := http.NewServeMux()
	plainMux.HandleFunc("/op", func(w http.ResponseWriter, r *http.Request) {
		seen.add(r)
		w.Header().Set("Location", tlsURL+"/done")
		w.WriteHeader(http.StatusSeeOther)
	})
	s, p, client := pair(t, tlsMux, plainMux)
	tlsURL, plainURL = s.URL, p.URL

	res, err := redirect.Follow(context.Background(), client, s.URL+"/start", redirect.Options{Interface: "wwan0"})
	if err != nil {
		t.Fatal(err)
	}
	if res.FinalStatus != 200 || !res.IsJSON() || string(res.Body.(json.RawMessage)) != `{"ok":true}` {
		t.Fatalf("final = %d %v %q", res.FinalStatus, res.IsJSON(), res.RawBody)
	}
	if res.FinalURL != s.URL+"/done" {
		t.Errorf("final url %q", res.FinalURL)
	}
	wantStatus := []int{302, 301, 303, 200}
	if len(res.Trace) != len(wantStatus) {
		t.Fatalf("trace has %d hops, want %d: %+v", len(res.Trace), len(wantStatus), res.Trace)
	}
	for i, h := range res.Trace {
		if h.Status != wantStatus[i] {
			t.Errorf("hop %d status %d, want %d", i, h.Status, wantStatus[i])
		}
		if h.Interface != "wwan0" || h.LocalAddress == "" || h.RemoteAddress == "" || h.Method != "GET" {
			t.Errorf("hop %d lacks interface/addresses: %+v", i, h)
		}
		if !strings.HasPrefix(h.LocalAddress, "127.0.0.1:") {
			t.Errorf("hop %d local address %q", i, h.LocalAddress)
		}
	}
	if got := res.Trace[1].URL; got != s.URL+"/step%20two" {
		t.Errorf("hop 2 url %q", got)
	}
	if got := res.Trace[2].URL; got != p.URL+"/op?msisdn=4477******23" {
		t.Errorf("hop 3 url not masked: %q", got)
	}
	// One User-Agent and Accept for the whole chain.
	for _, r := range seen.all() {
		if r.UserAgent() != redirect.DefaultUserAgent || r.Header.Get("Accept") != redirect.DefaultAccept {
			t.Errorf("%s: UA %q Accept %q", r.URL.Path, r.UserAgent(), r.Header.Get("Accept"))
		}
	}
}

func TestResolveLocation(t *testing.T) {
	base, _ := url.Parse("https://api.example:8443/a/b/c?x=1")
	tests := []struct {
		loc, want string
		bad       bool
	}{
		{loc: "/root", want: "https://api.example:8443/root"},
		{loc: "sib", want: "https://api.example:8443/a/b/sib"},
		{loc: "../up?y=2", want: "https://api.example:8443/a/up?y=2"},
		{loc: "?only=query", want: "https://api.example:8443/a/b/c?only=query"},
		{loc: "//other.example/p", want: "https://other.example/p"},
		{loc: "http://op.example/x", want: "http://op.example/x"},
		{loc: "  next hop?sid=a b  ", want: "https://api.example:8443/a/b/next%20hop?sid=a%20b"},
		{loc: "/100%", want: "https://api.example:8443/100%25"},
		{loc: "/caf\xc3\xa9", want: "https://api.example:8443/caf%C3%A9"},
		{loc: "/a|b{c}", want: "https://api.example:8443/a%7Cb%7Bc%7D"},
		{loc: "https://user:pw@op.example/x", want: "https://op.example/x"},
		{loc: "", bad: true},
		{loc: "ftp://x.example/", bad: true},
		{loc: "javascript:alert(1)", bad: true},
		{loc: "https:opaque", bad: true},
		{loc: "/x\r\nSet-Cookie: a=b", bad: true},
		{loc: "/nul\x00", bad: true},
		{loc: "https://", bad: true},
		{loc: "http://[::1", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.loc, func(t *testing.T) {
			u, err := redirect.ResolveLocation(base, tc.loc)
			if tc.bad {
				if err == nil {
					t.Fatalf("resolved to %s, want an error", u)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.String() != tc.want {
				t.Fatalf("got %s, want %s", u, tc.want)
			}
		})
	}
}

func TestAuthorizationNeverOverHTTP(t *testing.T) {
	var tlsSeen, plainSeen, otherSeen hits
	var plainURL, otherURL string
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherSeen.add(r)
		io.WriteString(w, "end")
	}))
	t.Cleanup(other.Close)
	otherURL = other.URL
	var firstURL string
	s, p, client := pair(t,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tlsSeen.add(r)
			if r.URL.Path == "/back" {
				w.Header().Set("Location", otherURL+"/end")
			} else {
				w.Header().Set("Location", plainURL+"/plain")
			}
			w.WriteHeader(http.StatusFound)
		}),
		// The plain hop sends the chain back to the first https host.
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			plainSeen.add(r)
			w.Header().Set("Location", firstURL+"/back")
			w.WriteHeader(http.StatusFound)
		}))
	plainURL, firstURL = p.URL, s.URL
	hdr := http.Header{"Authorization": {"Bearer s3cr3t-t0ken"}, "X-Secret": {"xs3cret"}, "X-Trace": {"t1"}}
	res, err := redirect.Follow(context.Background(), client, s.URL+"/start", redirect.Options{Header: hdr})
	if err != nil {
		t.Fatal(err)
	}
	if res.FinalStatus != 200 || len(res.Trace) != 4 {
		t.Fatalf("final %d, %d hops", res.FinalStatus, len(res.Trace))
	}
	for _, r := range tlsSeen.all() {
		if r.Header.Get("Authorization") != "Bearer s3cr3t-t0ken" || r.Header.Get("X-Secret") != "xs3cret" {
			t.Errorf("first host %s lacks the credentials", r.URL.Path)
		}
	}
	if len(tlsSeen.all()) != 2 {
		t.Fatalf("first host saw %d requests, want 2", len(tlsSeen.all()))
	}
	for _, set := range []*hits{&plainSeen, &otherSeen} {
		rs := set.all()
		if len(rs) != 1 {
			t.Fatalf("saw %d requests, want 1", len(rs))
		}
		for _, r := range rs {
			if r.Header.Get("Authorization") != "" || r.Header.Get("X-Secret") != "" {
				t.Errorf("%s got credentials: %v", r.Host, r.Header)
			}
			if r.Header.Get("X-Trace") != "t1" {
				t.Errorf("%s lost a non-credential header", r.Host)
			}
		}
	}
}

func TestStopAtNeverFetched(t *testing.T) {
	var cbHits hits
	cb := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cbHits.add(r)
		io.WriteString(w, "callback must not be fetched")
	}))
	t.Cleanup(cb.Close)
	cbURL, _ := url.Parse(cb.URL)
	tests := []struct {
		name, stopAt, location string
		stops                  bool
	}{
		{"exact", cb.URL + "/callback", cb.URL + "/callback?code=c0de-secret&state=st4te-secret&session_state=ss-secret", true},
		{"sub-path", cb.URL + "/callback", cb.URL + "/callback/x?code=c0de-secret", true},
		{"scheme ignored", cb.URL + "/callback", "http://" + cbURL.Host + "/callback?code=c0de-secret", true},
		{"fragment params", cb.URL + "/callback", cb.URL + "/callback#code=c0de-secret&state=st4te-secret", true},
		{"prefix is not a sub-path", cb.URL + "/callback", cb.URL + "/callbackx?code=c0de-secret", false},
		{"other port", "https://127.0.0.1:1/callback", cb.URL + "/callback?code=c0de-secret", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cbHits = hits{}
			s, _, client := pair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", tc.location)
				w.WriteHeader(http.StatusFound)
			}), nil)
			res, err := redirect.Follow(context.Background(), client, s.URL+"/auth", redirect.Options{StopAt: tc.stopAt})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.stops {
				if res.Stopped || len(cbHits.all()) != 1 {
					t.Fatalf("stopped=%v callback hits=%d, want the chain to go on", res.Stopped, len(cbHits.all()))
				}
				return
			}
			if !res.Stopped || res.FinalStatus != 302 || len(res.Trace) != 1 {
				t.Fatalf("stopped=%v status=%d hops=%d", res.Stopped, res.FinalStatus, len(res.Trace))
			}
			if n := len(cbHits.all()); n != 0 {
				t.Fatalf("the stop_at URL was fetched %d times", n)
			}
			if res.RedirectParams["code"] != "c0de-secret" {
				t.Errorf("params %v", res.RedirectParams)
			}
			if strings.Contains(res.FinalURL, "secret") {
				t.Errorf("final url not redacted: %s", res.FinalURL)
			}
			if res.Body != nil {
				t.Errorf("body %v for a stopped chain", res.Body)
			}
		})
	}
}

func TestLoopAndLimit(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/a", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/b", http.StatusFound) })
	mux.HandleFunc("/b", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/a", http.StatusFound) })
	n := 0
	var mu sync.Mutex
	mux.HandleFunc("/n/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		http.Redirect(w, r, fmt.Sprintf("/n/%d", i), http.StatusTemporaryRedirect)
	})
	// Sets a cookie and redirects to itself once: a retry, not a loop.
	mux.HandleFunc("/self", func(w http.ResponseWriter, r *http.Request) {
		if _, err := r.Cookie("seen"); err != nil {
			http.SetCookie(w, &http.Cookie{Name: "seen", Value: "1"})
			http.Redirect(w, r, "/self", http.StatusFound)
			return
		}
		io.WriteString(w, "ok")
	})
	s, _, client := pair(t, mux, nil)

	_, err := redirect.Follow(context.Background(), client, s.URL+"/a", redirect.Options{})
	e := asVerifyError(t, err, verify.CodeRedirectLoop)
	if len(e.Trace) != 2 {
		t.Errorf("loop trace has %d hops, want 2", len(e.Trace))
	}

	_, err = redirect.Follow(context.Background(), client, s.URL+"/n/0", redirect.Options{MaxHops: 3})
	e = asVerifyError(t, err, verify.CodeRedirectLimit)
	if len(e.Trace) != 3 {
		t.Errorf("limit trace has %d hops, want 3", len(e.Trace))
	}
	_, err = redirect.Follow(context.Background(), client, s.URL+"/n/0", redirect.Options{})
	e = asVerifyError(t, err, verify.CodeRedirectLimit)
	if len(e.Trace) != redirect.DefaultMaxHops {
		t.Errorf("default limit trace has %d hops, want %d", len(e.Trace), redirect.DefaultMaxHops)
	}

	res, err := redirect.Follow(context.Background(), client, s.URL+"/self", redirect.Options{})
	if err != nil || res.FinalStatus != 200 || len(res.Trace) != 2 {
		t.Fatalf("self redirect with cookie: %v %+v", err, res)
	}
}

func TestMethods(t *testing.T) {
	type seenReq struct{ method, body string }
	var mu sync.Mutex
	var got []seenReq
	mux := http.NewServeMux()
	record := func(r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seenReq{r.Method, string(b)})
		mu.Unlock()
	}
	mux.HandleFunc("/307", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		http.Redirect(w, r, "/308", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/308", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		http.Redirect(w, r, "/303", http.StatusPermanentRedirect)
	})
	mux.HandleFunc("/303", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		http.Redirect(w, r, "/end", http.StatusSeeOther)
	})
	mux.HandleFunc("/end", func(w http.ResponseWriter, r *http.Request) { record(r) })
	s, _, client := pair(t, mux, nil)
	_, err := redirect.Follow(context.Background(), client, s.URL+"/307",
		redirect.Options{Method: http.MethodPost, Body: []byte("payload")})
	if err != nil {
		t.Fatal(err)
	}
	want := []seenReq{{"POST", "payload"}, {"POST", "payload"}, {"POST", "payload"}, {"GET", ""}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestBadInputs(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/noloc", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusFound) })
	mux.HandleFunc("/ftp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "ftp://x.example/")
		w.WriteHeader(http.StatusFound)
	})
	s, p, client := pair(t, mux, mux)
	tests := []struct {
		name, url, code string
		opts            redirect.Options
	}{
		{"http start", p.URL + "/x", verify.CodeBadURL, redirect.Options{}},
		{"relative start", "/x", verify.CodeBadURL, redirect.Options{}},
		{"bad stop_at", s.URL + "/x", verify.CodeBadURL, redirect.Options{StopAt: "callback"}},
		{"no Location", s.URL + "/noloc", verify.CodeBadRedirect, redirect.Options{}},
		{"ftp Location", s.URL + "/ftp", verify.CodeBadRedirect, redirect.Options{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := redirect.Follow(context.Background(), client, tc.url, tc.opts)
			asVerifyError(t, err, tc.code)
		})
	}
	if _, err := redirect.Follow(context.Background(), nil, s.URL, redirect.Options{}); verify.CodeOf(err) != verify.CodeNoBearer {
		t.Errorf("nil client: %v", err)
	}
}

func TestTimeouts(t *testing.T) {
	done := make(chan struct{})
	s, _, client := pair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // hang until the client gives up or the test ends
		case <-r.Context().Done():
		case <-done:
		}
	}), nil)
	defer close(done)

	_, err := redirect.Follow(context.Background(), client, s.URL+"/slow", redirect.Options{HopTimeout: 50 * time.Millisecond})
	e := asVerifyError(t, err, verify.CodeConnectTimeout)
	if !strings.Contains(e.Message, "no complete answer") || len(e.Trace) != 1 || e.Trace[0].Error == "" {
		t.Errorf("hop timeout: %v, trace %+v", e, e.Trace)
	}

	// A dial that never completes: connect_timeout, before any connection.
	blocking := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}}
	_, err = redirect.Follow(context.Background(), blocking, "https://192.0.2.1/check", redirect.Options{HopTimeout: 50 * time.Millisecond})
	e = asVerifyError(t, err, verify.CodeConnectTimeout)
	if !strings.Contains(e.Message, "no connection") {
		t.Errorf("dial timeout message: %q", e.Message)
	}

	// The check's own deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = redirect.Follow(ctx, client, s.URL+"/slow", redirect.Options{HopTimeout: time.Minute})
	e = asVerifyError(t, err, verify.CodeConnectTimeout)
	if !strings.Contains(e.Message, "deadline") {
		t.Errorf("check deadline message: %q", e.Message)
	}

	// Cancellation (daemon shutdown) is interrupted, and says so to errors.Is.
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	_, err = redirect.Follow(ctx, client, s.URL+"/slow", redirect.Options{HopTimeout: time.Minute})
	asVerifyError(t, err, verify.CodeInterrupted)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v does not wrap context.Canceled", err)
	}
}

func TestBearerErrors(t *testing.T) {
	for _, tc := range []struct {
		sentinel error
		code     string
	}{
		{modem.ErrNoBearer, verify.CodeNoBearer},
		{modem.ErrGone, verify.CodeModemGone},
		{errors.New("connection refused"), verify.CodeConnectFailed},
	} {
		t.Run(tc.code, func(t *testing.T) {
			c := &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
				return nil, fmt.Errorf("dial via wwan0: %w", tc.sentinel)
			}}}
			_, err := redirect.Follow(context.Background(), c, "https://192.0.2.1/check", redirect.Options{Interface: "wwan0"})
			e := asVerifyError(t, err, tc.code)
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("%v does not wrap %v", err, tc.sentinel)
			}
			if len(e.Trace) != 1 || e.Trace[0].Interface != "wwan0" || e.Trace[0].Error == "" {
				t.Errorf("trace %+v", e.Trace)
			}
		})
	}
}

// certFor makes a CA and a leaf for 127.0.0.1 valid from notBefore to
// notAfter.
func certFor(t *testing.T, notBefore, notAfter time.Time) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestTLSErrors(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name      string
		from, to  time.Time
		trustRoot bool
		code      string
	}{
		{"clock before validity", now.Add(24 * time.Hour), now.Add(48 * time.Hour), true, verify.CodeClockNotSynced},
		{"expired certificate", now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), true, verify.CodeTLSError},
		{"unknown authority", now.Add(-time.Hour), now.Add(time.Hour), false, verify.CodeTLSError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cert, pool := certFor(t, tc.from, tc.to)
			s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			s.StartTLS()
			t.Cleanup(s.Close)
			cfg := &tls.Config{}
			if tc.trustRoot {
				cfg.RootCAs = pool
			} else {
				cfg.RootCAs = x509.NewCertPool()
			}
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
			_, err := redirect.Follow(context.Background(), c, s.URL+"/check", redirect.Options{})
			e := asVerifyError(t, err, tc.code)
			if tc.code == verify.CodeClockNotSynced && !strings.Contains(e.Message, "clock") {
				t.Errorf("message %q does not say clock", e.Message)
			}
		})
	}
}

func TestBodies(t *testing.T) {
	big := strings.Repeat("x", redirect.DefaultMaxBody+10)
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) })
	mux.HandleFunc("/text", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, `{"looks":"json"}`)
	})
	mux.HandleFunc("/problem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusPreconditionFailed)
		io.WriteString(w, `{"status":412}`)
	})
	s, _, client := pair(t, mux, nil)
	res, err := redirect.Follow(context.Background(), client, s.URL+"/big", redirect.Options{})
	if err != nil || !res.BodyTruncated || len(res.RawBody) != redirect.DefaultMaxBody || res.IsJSON() {
		t.Fatalf("big: %v truncated=%v len=%d", err, res.BodyTruncated, len(res.RawBody))
	}
	res, err = redirect.Follow(context.Background(), client, s.URL+"/text", redirect.Options{})
	if err != nil || res.IsJSON() || res.Body.(string) != `{"looks":"json"}` {
		t.Fatalf("text: %v %#v", err, res.Body)
	}
	res, err = redirect.Follow(context.Background(), client, s.URL+"/problem", redirect.Options{})
	if err != nil || !res.IsJSON() || res.FinalStatus != 412 {
		t.Fatalf("problem: %v %#v", err, res)
	}
}

func TestOpen(t *testing.T) {
	s, _, client := pair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/start" {
			http.Redirect(w, r, "/cb?code=xyz-secret-code&state=abc", http.StatusFound)
			return
		}
		t.Errorf("fetched %s", r.URL.Path)
	}), nil)
	var req redirect.OpenRequest
	if err := json.Unmarshal([]byte(`{"url":"`+s.URL+`/start","stop_at":"`+s.URL+`/cb","max_hops":2}`), &req); err != nil {
		t.Fatal(err)
	}
	res, err := redirect.Open(context.Background(), client, req, redirect.Options{Interface: "wwan1"})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(res)
	var m map[string]any
	json.Unmarshal(out, &m)
	for _, k := range []string{"final_status", "final_url", "body", "redirect_params", "trace"} {
		if _, ok := m[k]; !ok {
			t.Errorf("open result lacks %q: %s", k, out)
		}
	}
	if res.RedirectParams["code"] != "xyz-secret-code" {
		t.Errorf("live params %v", res.RedirectParams)
	}
	j, _ := json.Marshal(res.Redacted())
	if strings.Contains(string(j), "xyz-secret-code") {
		t.Errorf("redacted result holds the code: %s", j)
	}
}

// TestNoSecretsAnywhere feeds real-looking secrets through a chain that
// ends in success and one that ends in error, and looks for them in the
// trace, the error string and the result's JSON (redirect_params aside,
// which the live answer carries on purpose).
func TestNoSecretsAnywhere(t *testing.T) {
	secrets := []string{
		"bb245885-3221-4da7-8b0a-2d352cd906e9",     // code
		"ea736ff8-dc4d-4ee6-84d4-ebf3948be724",     // state
		"842b5f93-2c70-4df3-930e-d7cd42516c31",     // session_state
		"U4k7_tLbhEGH_rIWYt3Z5A6yFgq3fvwpqK4zn7jC", // private_key
		"2YotnFZFEjr1zCsicMWpAA",                   // access_token
		"s3cret+/=:value",                          // client_secret
		"c00kieSecretValue",
		"447700900123",
	}
	q := url.Values{
		"code": {secrets[0]}, "state": {secrets[1]}, "session_state": {secrets[2]},
		"private_key": {secrets[3]}, "access_token": {secrets[4]}, "client_secret": {secrets[5]},
		"login_hint": {secrets[7]}, "phone_number": {"+" + secrets[7]},
	}.Encode()
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: secrets[6]})
		w.Header().Set("Location", "/m/"+secrets[7]+"?"+q+"#token="+secrets[4])
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("/m/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/loop?"+q)
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/m/"+secrets[7]+"?"+q)
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("/stop", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/cb?"+q)
		w.WriteHeader(http.StatusFound)
	})
	s, _, client := pair(t, mux, nil)
	hdr := http.Header{"Authorization": {"Bearer " + secrets[4]}, "X-Secret": {secrets[5]}}

	check := func(what, text string) {
		t.Helper()
		for _, sec := range secrets {
			for _, form := range []string{sec, url.QueryEscape(sec)} {
				if strings.Contains(text, form) {
					t.Errorf("%s holds secret %q: %s", what, form, text)
				}
			}
		}
	}
	_, err := redirect.Follow(context.Background(), client, s.URL+"/start?"+q, redirect.Options{Header: hdr})
	e := asVerifyError(t, err, verify.CodeRedirectLoop)
	check("error", err.Error())
	tr, _ := json.Marshal(e.Trace)
	check("error trace", string(tr))
	if !strings.Contains(string(tr), "4477******23") {
		t.Errorf("trace does not show the masked number: %s", tr)
	}

	res, err := redirect.Follow(context.Background(), client, s.URL+"/stop?"+q,
		redirect.Options{Header: hdr, StopAt: s.URL + "/cb"})
	if err != nil {
		t.Fatal(err)
	}
	live := *res
	live.RedirectParams = nil
	j, _ := json.Marshal(&live)
	check("result", string(j))
	j, _ = json.Marshal(res.Redacted())
	check("redacted result", string(j))
}
