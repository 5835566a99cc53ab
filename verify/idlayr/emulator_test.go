package idlayr_test

import (
	"context"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/emulator"
	"github.com/simproof/simproof/verify/idlayr"
)

// The emulator maps 127.0.0.1 to this number (StartLoopback's default).
const loopbackMSISDN = "447700900123"

type emu struct {
	e      *emulator.Emulator
	server *http.Client // ordinary client, trusting the CA through a ca_file as the daemon does
	device *http.Client // stands in for the pinned client
}

func startEmulator(t *testing.T, cfg emulator.Config) *emu {
	t.Helper()
	e, err := emulator.StartLoopback(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := e.WriteCA(ca); err != nil {
		t.Fatal(err)
	}
	roots, err := verify.CertPool(ca)
	if err != nil {
		t.Fatal(err)
	}
	dev := verify.NewServerClient(roots) // same TLS settings; its redirect policy is replaced by the engine
	return &emu{e: e, server: verify.NewServerClient(roots), device: dev}
}

func (m *emu) provider(t *testing.T, mod func(*idlayr.Config)) *idlayr.Provider {
	t.Helper()
	cfg := idlayr.Config{
		Credentials:  idlayr.Credentials{ClientID: emulator.DefaultClientID, ClientSecret: emulator.DefaultClientSecret},
		BaseURL:      m.e.BaseURL(emulator.RoleIDlayr),
		HTTPClient:   m.server,
		PollInterval: 5 * time.Millisecond,
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

func (m *emu) req(number string) verify.Request {
	return verify.Request{PhoneNumber: "+" + number, Device: m.device, Interface: "lo"}
}

func TestEmulatorV01(t *testing.T) {
	m := startEmulator(t, emulator.Config{})
	p := m.provider(t, nil)
	res, err := p.Check(context.Background(), m.req(loopbackMSISDN))
	if err != nil {
		t.Fatal(err)
	}
	if !*res.Verified || res.ProviderStatus != idlayr.StatusCompleted {
		t.Fatalf("result %s", res)
	}
	// provider → plain-http operator → relative hop2 (cookie) → provider.
	if len(res.Trace) != 4 || !strings.HasPrefix(res.Trace[1].URL, "http://") || res.Trace[3].Status != 200 {
		t.Fatalf("trace %+v", res.Trace)
	}
	for _, h := range res.Trace {
		if !strings.HasPrefix(h.LocalAddress, "127.0.0.1:") || h.Interface != "lo" {
			t.Errorf("hop %+v", h)
		}
	}
	if st := m.e.Stats(); st.ChecksCreated != 1 || st.TokensIssued != 1 {
		t.Errorf("stats %+v", st)
	}
	for _, r := range m.e.Requests() {
		if r.Path == "/oauth2/v1/token" && r.AuthKind != "basic" {
			t.Errorf("token request authenticated as %q, want the seed's raw basic", r.AuthKind)
		}
		if !r.TLS && r.Auth {
			t.Errorf("Authorization sent over plain http to %s%s", r.Host, r.Path)
		}
	}

	// Another subscriber's number: the operator sees 447700900123.
	res, err = p.Check(context.Background(), m.req("447700900124"))
	if err != nil || *res.Verified || res.Match == nil || *res.Match {
		t.Fatalf("other number: %v %s", err, res)
	}
}

func TestEmulatorV02(t *testing.T) {
	m := startEmulator(t, emulator.Config{})
	for _, redirectURL := range []string{"", "https://app.example.test/idlayr/done"} {
		p := m.provider(t, func(c *idlayr.Config) { c.Version = idlayr.V02; c.RedirectURL = redirectURL })
		res, err := p.Check(context.Background(), m.req(loopbackMSISDN))
		if err != nil {
			t.Fatalf("redirect_url %q: %v", redirectURL, err)
		}
		if !*res.Verified {
			t.Fatalf("redirect_url %q: %s", redirectURL, res)
		}
	}
	for _, r := range m.e.Requests() {
		if strings.Contains(r.Host, "app.example.test") {
			t.Errorf("redirect_url fetched: %+v", r)
		}
	}
	// A refusal at the check_url comes back through redirect_url.
	m.e.SetFaults(loopbackMSISDN, emulator.Faults{NotMobileIP: true})
	p := m.provider(t, func(c *idlayr.Config) { c.Version = idlayr.V02; c.RedirectURL = "https://app.example.test/cb" })
	res, err := p.Check(context.Background(), m.req(loopbackMSISDN))
	if err != nil || *res.Verified || res.Reason != verify.CodeNotMobileIP {
		t.Fatalf("not mobile via redirect_url: %v %s", err, res)
	}
}

func TestEmulatorSandboxNumbers(t *testing.T) {
	m := startEmulator(t, emulator.Config{})
	tests := []struct {
		digit    string
		verified *bool  // completed checks
		reason   string // completed, not verified
		code     string // failed checks
	}{
		{"0", verify.Bool(true), "", ""},
		{"1", verify.Bool(false), "", ""},
		{"2", verify.Bool(false), verify.CodeNotMobileIP, ""},
		{"3", verify.Bool(false), verify.CodeOperatorMismatch, ""},
		{"4", nil, "", verify.CodeUnsupportedOperator},
		{"5", nil, "", verify.CodeUnsupportedOperator},
		{"6", nil, "", verify.CodeExpired},
		{"7", nil, "", verify.CodeProviderError},
		{"8", verify.Bool(true), "", ""},
		{"9", verify.Bool(true), "", ""},
	}
	p := m.provider(t, nil)
	// A short cap so the never-completing number expires quickly (it would
	// not leave room for 998's Retry-After).
	short := m.provider(t, func(c *idlayr.Config) { c.TTLCap = 500 * time.Millisecond; c.MaxPollInterval = 50 * time.Millisecond })
	for _, tc := range tests {
		t.Run(emulator.SandboxPrefix+tc.digit, func(t *testing.T) {
			p := p
			if tc.code == verify.CodeExpired {
				p = short
			}
			res, err := p.Check(context.Background(), m.req(emulator.SandboxPrefix+tc.digit))
			if tc.code != "" {
				e := wantCode(t, err, tc.code)
				if tc.digit == "7" && e.ProviderCode != "mno_timeout" {
					t.Errorf("provider code %q", e.ProviderCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *res.Verified != *tc.verified || res.Reason != tc.reason {
				t.Fatalf("result %s", res)
			}
		})
	}
}

func TestEmulatorFaults(t *testing.T) {
	m := startEmulator(t, emulator.Config{})
	tests := []struct {
		name   string
		faults emulator.Faults
		mod    func(*idlayr.Config)
		code   string
	}{
		{"redirect loop", emulator.Faults{RedirectLoop: true}, nil, verify.CodeRedirectLoop},
		{"hop cap", emulator.Faults{ExtraHops: 8}, nil, verify.CodeRedirectLimit},
		{"slow hop", emulator.Faults{SlowHop: 5 * time.Second}, func(c *idlayr.Config) { c.HopTimeout = 100 * time.Millisecond }, verify.CodeConnectTimeout},
		{"bad location", emulator.Faults{BadLocation: true}, nil, ""},
		{"rate limited polls", emulator.Faults{RateLimitPolls: 1, RetryAfter: time.Second}, nil, ""},
		{"server errors while polling", emulator.Faults{ServerErrorPolls: 2}, nil, ""},
		{"server errors beyond the bound", emulator.Faults{ServerErrorPolls: 10}, func(c *idlayr.Config) { c.ServerRetries = 2 }, verify.CodeProviderError},
		{"ERROR", emulator.Faults{ErrorCode: "mno_timeout"}, nil, verify.CodeProviderError},
		{"create rate limited", emulator.Faults{CreateRateLimit: 1}, nil, ""},
		{"mno not supported", emulator.Faults{MNONotSupported: true}, nil, verify.CodeUnsupportedOperator},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m.e.SetFaults(loopbackMSISDN, tc.faults)
			defer m.e.ClearFaults()
			res, err := m.provider(t, tc.mod).Check(context.Background(), m.req(loopbackMSISDN))
			if tc.code != "" {
				e := wantCode(t, err, tc.code)
				if tc.name == "hop cap" && len(e.Trace) != 10 {
					t.Errorf("hop cap trace has %d hops", len(e.Trace))
				}
				return
			}
			if err != nil || !*res.Verified {
				t.Fatalf("%v %s", err, res)
			}
		})
	}
}

func TestEmulatorResumeAndCoverage(t *testing.T) {
	m := startEmulator(t, emulator.Config{})
	p := m.provider(t, nil)
	var id string
	_, err := p.Check(context.Background(), verify.Request{PhoneNumber: "+" + loopbackMSISDN, Device: m.device,
		Progress: func(e verify.Event) error {
			if e.Stage == verify.StageResult {
				id = e.CheckID
				return context.Canceled // the daemon stops after the device step
			}
			return nil
		}})
	if err == nil || id == "" {
		t.Fatalf("setup: %v", err)
	}
	res, err := m.provider(t, nil).Resume(context.Background(), id) // a new process: new provider, new token
	if err != nil || !*res.Verified {
		t.Fatalf("resume: %v %s", err, res)
	}
	if n := m.e.Stats().ChecksCreated; n != 1 {
		t.Errorf("%d checks created; resuming must not create one", n)
	}

	cov, err := p.Coverage(context.Background(), m.device)
	if err != nil || !cov.PhoneCheck || cov.NetworkID == "" {
		t.Fatalf("coverage: %v %+v", err, cov)
	}
}

func TestEmulatorClockNotSynced(t *testing.T) {
	m := startEmulator(t, emulator.Config{CertNotBefore: time.Now().Add(48 * time.Hour)})
	_, err := m.provider(t, nil).Check(context.Background(), m.req(loopbackMSISDN))
	wantCode(t, err, verify.CodeClockNotSynced)
}

// The coverage preflight runs over the device's bearer before any check is
// created: a mobile source proceeds (and the result names the network), a
// non-mobile one ends not_mobile_ip without a check being created.
func TestEmulatorPreflight(t *testing.T) {
	preflight := func(c *idlayr.Config) { c.Preflight = true }

	m := startEmulator(t, emulator.Config{})
	res, err := m.provider(t, preflight).Check(context.Background(), m.req(loopbackMSISDN))
	if err != nil || res.Verified == nil || !*res.Verified || res.NetworkID == "" {
		t.Fatalf("mobile source: %+v %v", res, err)
	}

	m = startEmulator(t, emulator.Config{MobileRanges: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")}})
	res, err = m.provider(t, preflight).Check(context.Background(), m.req(loopbackMSISDN))
	if err != nil || res.Verified == nil || *res.Verified || res.Reason != verify.CodeNotMobileIP {
		t.Fatalf("non-mobile source: %+v %v", res, err)
	}
	if n := m.e.Stats().ChecksCreated; n != 0 {
		t.Errorf("%d checks created after a failed preflight", n)
	}
}
