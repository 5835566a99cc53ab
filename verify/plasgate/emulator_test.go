package plasgate_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/emulator"
	"github.com/simproof/simproof/verify/plasgate"
)

// The emulator maps 127.0.0.1 to this number (StartLoopback's default).
const loopbackMSISDN = "447700900123"

// A redirect_uri on a host that does not resolve: fetching it would fail
// the check, and the emulator would not see it either way.
const appRedirectURI = "https://app.example.test/plasgate/callback"

type emu struct {
	e              *emulator.Emulator
	server, device *http.Client
}

func startEmulator(t *testing.T) *emu {
	t.Helper()
	e, err := emulator.StartLoopback(emulator.Config{})
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
	return &emu{e: e, server: verify.NewServerClient(roots), device: verify.NewServerClient(roots)}
}

func (m *emu) provider(t *testing.T, mod func(*plasgate.Config)) *plasgate.Provider {
	t.Helper()
	cfg := plasgate.Config{
		BaseURL: m.e.BaseURL(emulator.RolePlasGate), PrivateKey: emulator.DefaultPlasGatePrivateKey,
		Secret: emulator.DefaultPlasGateSecret, RedirectURI: appRedirectURI, HTTPClient: m.server,
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := plasgate.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (m *emu) req(number, scope string) verify.Request {
	if number != "" {
		number = "+" + number
	}
	return verify.Request{PhoneNumber: number, Device: m.device, Interface: "lo", Scope: scope}
}

func TestEmulatorPhoneVerify(t *testing.T) {
	m := startEmulator(t)
	res, err := m.provider(t, nil).Check(context.Background(), m.req(loopbackMSISDN, ""))
	if err != nil {
		t.Fatal(err)
	}
	if !*res.Verified || res.ProviderStatus != "success" || res.Sub == "" {
		t.Fatalf("result %s", res)
	}
	// provider → plain-http operator → hop2 (cookie) → provider callback, which
	// answers with the redirect_uri Location the chain stops at.
	if len(res.Trace) != 4 || !strings.HasPrefix(res.Trace[1].URL, "http://") {
		t.Fatalf("trace %+v", res.Trace)
	}
	for _, r := range m.e.Requests() {
		if strings.Contains(r.Host, "app.example.test") || strings.Contains(r.Path, "callback") && r.Path != "/ip/callback" {
			t.Errorf("redirect_uri fetched: %+v", r)
		}
		if r.Path == "/ip/ip-auth" && r.AuthKind != "x-secret" {
			t.Errorf("exchange auth %q", r.AuthKind)
		}
	}
	if st := m.e.Stats(); st.PlasGateResults != 1 {
		t.Errorf("stats %+v", st)
	}

	res, err = m.provider(t, nil).Check(context.Background(), m.req("447700900124", ""))
	if err != nil || *res.Verified || res.ProviderStatus != "failed" || res.ErrorDescription == "" {
		t.Fatalf("other number: %v %s", err, res)
	}
}

func TestEmulatorFaults(t *testing.T) {
	m := startEmulator(t)
	tests := []struct {
		name   string
		faults emulator.Faults
		mod    func(*plasgate.Config)
		code   string // failed
		reason string // completed, not verified
	}{
		{"not mobile", emulator.Faults{NotMobileIP: true}, nil, "", verify.CodeNotMobileIP},
		{"state mismatch", emulator.Faults{StateMismatch: true}, nil, verify.CodeBadRedirect, ""},
		{"state mismatch ignored", emulator.Faults{StateMismatch: true}, func(c *plasgate.Config) { c.IgnoreState = true }, "", ""},
		{"exchange 403", emulator.Faults{Exchange403: true}, nil, verify.CodeProviderAuthFailed, ""},
		{"exchange 500", emulator.Faults{Exchange500: true}, nil, verify.CodeProviderError, ""},
		{"boolean verified", emulator.Faults{VerifiedBool: true}, nil, "", ""},
		{"provider error", emulator.Faults{PlasGateError: "server_error"}, nil, verify.CodeProviderError, ""},
		{"redirect loop", emulator.Faults{RedirectLoop: true}, nil, verify.CodeRedirectLoop, ""},
		{"bad location", emulator.Faults{BadLocation: true}, nil, "", ""},
		{"key in query, check-info", emulator.Faults{}, func(c *plasgate.Config) { c.PrivateKeyInQuery = true; c.ExchangePath = "/ip/check-info" }, "", ""},
		{"wrong private key", emulator.Faults{}, func(c *plasgate.Config) { c.PrivateKey = "wrong" }, verify.CodeProviderAuthFailed, ""},
		{"wrong secret", emulator.Faults{}, func(c *plasgate.Config) { c.Secret = "wrong" }, verify.CodeProviderAuthFailed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m.e.SetFaults(loopbackMSISDN, tc.faults)
			defer m.e.ClearFaults()
			res, err := m.provider(t, tc.mod).Check(context.Background(), m.req(loopbackMSISDN, ""))
			switch {
			case tc.code != "":
				wantCode(t, err, tc.code)
			case err != nil:
				t.Fatal(err)
			case tc.reason != "":
				if *res.Verified || res.Reason != tc.reason {
					t.Fatalf("result %s", res)
				}
			default:
				if !*res.Verified {
					t.Fatalf("result %s", res)
				}
			}
		})
	}
}

func TestEmulatorScopes(t *testing.T) {
	m := startEmulator(t)
	p := m.provider(t, nil)
	res, err := p.Check(context.Background(), m.req("", "mobile_id"))
	if err != nil || res.Verified != nil || len(res.MobileID) != 128 {
		t.Fatalf("mobile_id: %v %s", err, res)
	}
	res, err = p.Check(context.Background(), m.req("", "phone"))
	if err != nil || res.Verified != nil || res.PhoneNumber != loopbackMSISDN {
		t.Fatalf("phone: %v %s", err, res)
	}
	res, err = p.Check(context.Background(), m.req(loopbackMSISDN, "mobile_id phone_verify profile"))
	if err != nil || !*res.Verified || res.MobileID == "" || res.Claims["given_name"] == nil {
		t.Fatalf("profile: %v %s %v", err, res, res.Claims)
	}
	if res.ForJournal().Claims != nil {
		t.Error("journal copy keeps KYC claims")
	}
}
