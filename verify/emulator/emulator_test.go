package emulator_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simproof/simproof/verify/emulator"
)

func TestCA(t *testing.T) {
	v := start(t, nil)
	block, _ := pem.Decode(v.e.CAPEM())
	if block == nil {
		t.Fatal("CAPEM is not PEM")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.IsCA || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("CA IsCA=%v alg=%v", ca.IsCA, ca.PublicKeyAlgorithm)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := v.e.WriteCA(p); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != string(v.e.CAPEM()) {
		t.Errorf("WriteCA wrote %q, %v", b, err)
	}

	addr := strings.TrimPrefix(v.e.BaseURL(emulator.RoleIDlayr), "https://")
	for _, name := range append([]string{""}, emulator.DefaultDNSNames...) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: v.e.CertPool(), ServerName: name})
		if err != nil {
			t.Errorf("verify as %q: %v", name, err)
			continue
		}
		leaf := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if leaf.PublicKeyAlgorithm != x509.ECDSA {
			t.Errorf("leaf alg %v", leaf.PublicKeyAlgorithm)
		}
	}
	// A name the emulator does not serve fails verification, as it would
	// against a real server.
	if conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: v.e.CertPool(), ServerName: "evil.test"}); err == nil {
		conn.Close()
		t.Error("verified as evil.test")
	}
	// Without the CA, the system roots refuse it.
	if conn, err := tls.Dial("tcp", addr, &tls.Config{}); err == nil {
		conn.Close()
		t.Error("verified without the test CA")
	}
}

// A board whose clock is before the certificate's validity sees x509's
// "not yet valid" (what simproof reports as clock_not_synced).
func TestCertNotYetValid(t *testing.T) {
	v := start(t, func(c *emulator.Config) { c.CertNotBefore = time.Now().Add(48 * time.Hour) })
	addr := strings.TrimPrefix(v.e.BaseURL(emulator.RoleIDlayr), "https://")
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: v.e.CertPool()})
	if err == nil {
		conn.Close()
		t.Fatal("handshake succeeded")
	}
	var inv x509.CertificateInvalidError
	if !errors.As(err, &inv) || inv.Reason != x509.Expired {
		t.Errorf("want x509 Expired (not yet valid), got %v", err)
	}
}

// Tests in namespaces hand their own listeners to Serve and reach the
// emulator by names or addresses of their choosing.
func TestServeOnCallerListenersWithBaseURLs(t *testing.T) {
	e, err := emulator.New(emulator.Config{
		Subscribers: map[netip.Addr]string{srcA: numA},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	var ports [3]string
	for i, r := range []emulator.Role{emulator.RoleIDlayr, emulator.RolePlasGate, emulator.RoleOperator} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Serve(r, l, r != emulator.RoleOperator); err != nil {
			t.Fatal(err)
		}
		_, ports[i], _ = net.SplitHostPort(l.Addr().String())
	}
	if err := e.Serve(emulator.Role(42), nil, false); err == nil {
		t.Error("unknown role accepted")
	}
	if err := e.SetBaseURL(emulator.RoleIDlayr, "https://api.idlayr.test:"+ports[0]); err != nil {
		t.Fatal(err)
	}
	if err := e.SetBaseURL(emulator.RoleOperator, "http://operator.test:"+ports[2]); err != nil {
		t.Fatal(err)
	}
	if err := e.SetBaseURL(emulator.RolePlasGate, "https://x/path"); err == nil {
		t.Error("base URL with a path accepted")
	}
	// Resolve the test names to loopback, as a test DNS server would.
	c := e.Client()
	c.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, _ := net.SplitHostPort(addr)
		return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+port)
	}
	v := &env{t: t, e: e, api: c}
	tok := v.token("phone_check")
	id, checkURL := v.mustCreate(tok, "v0.1", numA, "")
	if !strings.HasPrefix(checkURL, "https://api.idlayr.test:"+ports[0]+"/") {
		t.Errorf("check_url %s", checkURL)
	}
	hops := v.walk(c, checkURL, 10)
	if len(hops) != 4 || hops[1].URL.Host != "operator.test:"+ports[2] || hops[3].URL.Host != "api.idlayr.test:"+ports[0] || last(hops).Status != 200 {
		t.Fatalf("hops %+v", hops)
	}
	if _, _, m := v.get(tok, "v0.1", id); m["match"] != true {
		t.Errorf("%v", m)
	}
	if err := e.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := c.Get(checkURL); err == nil {
		t.Error("served after Close")
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	if err := e.Serve(emulator.RoleIDlayr, l, true); err == nil {
		t.Error("Serve after Close succeeded")
	}
}

func TestStartLoopbackDefaults(t *testing.T) {
	e, err := emulator.StartLoopback(emulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, r := range []emulator.Role{emulator.RoleIDlayr, emulator.RolePlasGate} {
		if !strings.HasPrefix(e.BaseURL(r), "https://127.0.0.1:") {
			t.Errorf("%s: %s", r, e.BaseURL(r))
		}
	}
	if !strings.HasPrefix(e.BaseURL(emulator.RoleOperator), "http://127.0.0.1:") {
		t.Errorf("operator: %s", e.BaseURL(emulator.RoleOperator))
	}
	resp, err := e.Client().Get(e.BaseURL(emulator.RoleOperator) + "/op/whoami")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 512)
	n, _ := resp.Body.Read(b)
	resp.Body.Close()
	m := jsonBody(t, b[:n])
	if m["address"] != "127.0.0.1" || m["mobile"] != true || m["msisdn"] != "447700900123" {
		t.Errorf("whoami %v", m)
	}
}

func TestCountersAndObservations(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")
	v.token("phone_check")
	for range 3 {
		v.mustCreate(tok, "v0.1", numA, "")
	}
	_, checkURL := v.mustCreate(tok, "v0.2", numB, "")
	v.walk(v.device(srcB), checkURL, 10)
	s := v.e.Stats()
	if s.TokensIssued != 2 || s.ChecksCreated != 4 {
		t.Errorf("stats %+v", s)
	}
	rq := v.e.Requests()
	if s.Requests != len(rq) || len(rq) != 2+4+4 {
		t.Fatalf("%d requests logged, stats say %d", len(rq), s.Requests)
	}
	tokReq, create, dev := rq[0], rq[2], rq[6]
	if tokReq.Role != emulator.RoleIDlayr || tokReq.Method != "POST" || tokReq.Path != "/oauth2/v1/token" || !tokReq.TLS ||
		!tokReq.Auth || tokReq.AuthKind != "basic" || strings.Join(tokReq.BodyKeys, ",") != "grant_type,scope" || tokReq.Status != 200 {
		t.Errorf("token observation %+v", tokReq)
	}
	if create.AuthKind != "bearer" || create.Status != 201 || strings.Join(create.BodyKeys, ",") != "phone_number" {
		t.Errorf("create observation %+v", create)
	}
	if dev.Source != srcB || dev.Auth || !strings.HasSuffix(dev.Path, "/redirect") {
		t.Errorf("device observation %+v", dev)
	}
	op := rq[7]
	if op.Role != emulator.RoleOperator || op.TLS || op.Cookie || len(op.QueryKeys) != 1 || op.QueryKeys[0] != "sid" {
		t.Errorf("operator observation %+v", op)
	}
	if !rq[8].Cookie {
		t.Errorf("hop2 observation %+v", rq[8])
	}
	v.e.ResetObservations()
	if s := v.e.Stats(); s.ChecksCreated != 0 || len(v.e.Requests()) != 0 {
		t.Errorf("after reset %+v", s)
	}
}

// Secrets never appear in what the emulator records.
func TestObservationsHoldNoSecrets(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")
	_, checkURL := v.mustCreate(tok, "v0.2", numA, "")
	code := jsonBody(t, last(v.walk(v.device(srcA), checkURL, 10)).Body)["code"].(string)
	q, _ := v.pgWalk(srcA, v.authURL(numA, "phone_verify", "secret-state", nil))
	v.exchange("/ip/ip-auth", emulator.DefaultPlasGateSecret, exchangeBody(q), "")
	for _, r := range v.e.Requests() {
		s := strings.Join([]string{r.Host, r.Path, strings.Join(r.QueryKeys, ","), strings.Join(r.BodyKeys, ","), r.AuthKind}, "|")
		for _, secret := range []string{tok, code, q.Get("code"), "secret-state", emulator.DefaultPlasGatePrivateKey, emulator.DefaultClientSecret} {
			if strings.Contains(s, secret) {
				t.Errorf("observation %q holds a secret", s)
			}
		}
	}
}

func TestMethodsAndUnknownPaths(t *testing.T) {
	v := start(t, nil)
	idl := v.e.BaseURL(emulator.RoleIDlayr)
	for _, c := range []struct {
		method, url string
		status      int
	}{
		{"GET", idl + "/oauth2/v1/token", 405},
		{"DELETE", idl + "/phone_check/v0.1/checks/x", 405},
		{"PATCH", idl + "/phone_check/v0.1/checks/x", 405},
		{"GET", idl + "/nope", 404},
		{"GET", v.e.BaseURL(emulator.RolePlasGate) + "/ip/ip-auth", 405},
		{"GET", v.e.BaseURL(emulator.RolePlasGate) + "/nope", 404},
		{"POST", v.e.BaseURL(emulator.RoleOperator) + "/op/idlayr/start", 405},
		{"GET", v.e.BaseURL(emulator.RoleOperator) + "/op/idlayr/start?sid=unknown", 400},
		{"GET", v.e.BaseURL(emulator.RoleOperator) + "/elsewhere", 404},
	} {
		if st, _, _ := v.do(c.method, c.url, nil, nil); st != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.url, st, c.status)
		}
	}
}

// Many devices at once, as a bench of modems would run: every chain gets its
// own answer and the counters add up (run under -race).
func TestConcurrentChecks(t *testing.T) {
	v := start(t, nil)
	tok := v.token("phone_check")
	const n = 16
	type result struct {
		id    string
		match bool
		err   string
	}
	results := make(chan result, n)
	for i := range n {
		src := netip.AddrFrom4([4]byte{127, 0, 1, byte(10 + i)})
		phone := "4477009001" + string(rune('0'+i/10)) + string(rune('0'+i%10))
		v.e.SetSubscriber(src, phone)
		claim := phone
		if i%2 == 1 {
			claim = numA // odd devices claim someone else's number
		}
		go func() {
			// Failures are reported on the channel: t.Fatal must not run
			// off the test goroutine.
			b := strings.NewReader(`{"phone_number":"` + claim + `"}`)
			req, _ := http.NewRequest("POST", v.e.BaseURL(emulator.RoleIDlayr)+"/phone_check/v0.1/checks", b)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := v.api.Do(req)
			if err != nil {
				results <- result{err: err.Error()}
				return
			}
			var m struct {
				CheckID string `json:"check_id"`
				Links   struct {
					CheckURL struct{ Href string } `json:"check_url"`
				} `json:"_links"`
			}
			json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			c := v.device(src)
			c.CheckRedirect = nil // let net/http follow this well-formed chain
			resp, err = c.Get(m.Links.CheckURL.Href)
			if err != nil {
				results <- result{err: err.Error()}
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				results <- result{err: resp.Status}
				return
			}
			results <- result{id: m.CheckID, match: i%2 == 0}
		}()
	}
	for range n {
		select {
		case r := <-results:
			if r.err != "" {
				t.Error(r.err)
				continue
			}
			cv, ok := v.e.Check(r.id)
			if !ok || cv.Status != "COMPLETED" || cv.Match != r.match {
				t.Errorf("check %+v, want match %v", cv, r.match)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("concurrent checks did not finish")
		}
	}
	if got := v.e.Stats().ChecksCreated; got != n {
		t.Errorf("ChecksCreated %d, want %d", got, n)
	}
}
