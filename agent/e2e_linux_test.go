package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/internal/nstest"
	"github.com/simproof/simproof/modem/at"
	"github.com/simproof/simproof/modem/sim"
	"github.com/simproof/simproof/netbind"
	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/emulator"
	"github.com/simproof/simproof/verify/idlayr"
	"github.com/simproof/simproof/verify/plasgate"
)

// bench is spec/testing.md's test bench with the real daemon core: the
// device namespace has wwan0..N-1 (carrier) and eth0 (ISP, default route);
// the emulated providers and the operator sit in the server namespace,
// reachable through both; simulated modems on ptys report the carrier
// addresses as their bearers; the AT backend drives them; netbind applies
// the bearers in the device namespace and pins the device step there.
type bench struct {
	t        *testing.T
	tp       *nstest.Topology
	emu      *emulator.Emulator
	sims     []*sim.Modem
	client   *http.Client
	stateDir string
	logs     *syncBuffer
	stop     func()
	ids      []string                  // modem ids, by index
	links    []string                  // the simulated modems' pty links, by index
	setup    func(i int, m *sim.Modem) // after the bearer is set, before the port opens
	profile  string                    // the AT ports' profile ("" = auto)
	v6       bool                      // IPv6-only bearers, the server reached over IPv6
}

const (
	idlayrURL   = "https://192.0.2.80:443"
	redirectURI = "https://app.example.test/plasgate/callback"
)

// hostPort is the server's address for the bench's family.
func (b *bench) hostPort(port string) string {
	if b.v6 {
		return net.JoinHostPort(b.tp.ServerAddr6.String(), port)
	}
	return net.JoinHostPort(b.tp.ServerAddr4.String(), port)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// newBench builds the topology with n modems; modem i's SIM answers for
// +44770090000i. extraEth0Modem adds one more simulated modem whose "bearer"
// is eth0: the negative control that forces the device step off the
// cellular path.
func newBench(t *testing.T, n int, extraEth0Modem bool) *bench {
	return newBenchWith(t, n, extraEth0Modem, nil, "")
}

func newBenchWith(t *testing.T, n int, extraEth0Modem bool, setup func(int, *sim.Modem), profile string) *bench {
	return newBenchOpts(t, n, extraEth0Modem, &bench{setup: setup, profile: profile})
}

// newBenchOpts builds the bench from a template holding setup, profile, v6.
func newBenchOpts(t *testing.T, n int, extraEth0Modem bool, b *bench) *bench {
	t.Helper()
	nstest.RequireRoot(t)
	b.t, b.tp, b.stateDir, b.logs = t, nstest.NewTopology(t, nstest.Options{Modems: n}), t.TempDir(), &syncBuffer{}
	subs := map[netip.Addr]string{}
	for i, m := range b.tp.Modems {
		subs[m.Addr4.Addr()] = fmt.Sprintf("44770090000%d", i)
		subs[m.Addr6.Addr()] = fmt.Sprintf("44770090000%d", i)
	}
	emu, err := emulator.New(emulator.Config{IDlayrURL: "https://" + b.hostPort("443"), PlasGateURL: "https://" + b.hostPort("8443"),
		OperatorURL: "http://" + b.hostPort("80"), Subscribers: subs,
		MobileRanges: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("2001:db8:64::/48")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	for _, s := range []struct {
		role emulator.Role
		addr string
		tls  bool
	}{{emulator.RoleIDlayr, b.hostPort("443"), true}, {emulator.RolePlasGate, b.hostPort("8443"), true},
		{emulator.RoleOperator, b.hostPort("80"), false}} {
		if err := emu.Serve(s.role, b.tp.Server.Listen(t, "tcp", s.addr), s.tls); err != nil {
			t.Fatal(err)
		}
	}
	b.emu = emu
	b.start(n, extraEth0Modem)
	return b
}

// start runs the daemon core (again, for restart tests) on the bench.
func (b *bench) start(n int, extraEth0Modem bool) {
	t := b.t
	dir := t.TempDir()
	var ports []at.PortConfig
	if b.sims == nil {
		for i := 0; i < n+map[bool]int{true: 1}[extraEth0Modem]; i++ {
			m := sim.New(sim.DefaultIdentity(i))
			if i < n && b.v6 {
				tm := b.tp.Modems[i]
				m.SetBearer(sim.BearerConfig{APN: "internet", IPv6: tm.Addr6, Gateway6: tm.Gateway6,
					DNS6: []netip.Addr{b.tp.CarrierDNS6}})
			} else if i < n {
				tm := b.tp.Modems[i]
				m.SetBearer(sim.BearerConfig{APN: "internet", IPv4: tm.Addr4, Gateway4: tm.Gateway4,
					DNS4: []netip.Addr{b.tp.CarrierDNS4}})
			} else {
				m.SetBearer(sim.BearerConfig{APN: "internet", IPv4: b.tp.Eth0Addr4,
					Gateway4: netip.MustParseAddr("203.0.113.1"), DNS4: []netip.Addr{b.tp.ISPDNS4}})
			}
			if b.setup != nil {
				b.setup(i, m)
			}
			t.Cleanup(func() { m.Close() })
			b.sims = append(b.sims, m)
		}
	}
	for i, m := range b.sims {
		if i < len(b.links) {
			// A restart: the modems were unplugged with the old daemon.
			if err := m.Plug(); err != nil {
				t.Fatal(err)
			}
		} else {
			link := filepath.Join(dir, fmt.Sprintf("ttySIM%d", i))
			if err := m.ServePTY(link); err != nil {
				t.Fatal(err)
			}
			b.links = append(b.links, link)
		}
		link := b.links[i]
		netdev := fmt.Sprintf("wwan%d", i)
		if i >= len(b.tp.Modems) {
			netdev = b.tp.Eth0
		}
		ports = append(ports, at.PortConfig{Device: link, Simulated: true, NetDevice: netdev, Profile: b.profile})
	}
	log := slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	backend := at.NewBackend(at.BackendOptions{Ports: ports, CommandTimeout: 2 * time.Second, Log: log, Trace: true,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})

	// Server-side calls take the device's ordinary route: eth0, the ISP.
	roots := b.emu.CertPool()
	server := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DialContext: b.tp.Device.DialContext(&net.Dialer{}), TLSClientConfig: &tls.Config{RootCAs: roots}}}
	idp, err := idlayr.New(idlayr.Config{Credentials: idlayr.Credentials{ClientID: emulator.DefaultClientID,
		ClientSecret: emulator.DefaultClientSecret, DataResidency: "eu"}, BaseURL: "https://" + b.hostPort("443"), HTTPClient: server,
		TTLCap: 20 * time.Second, PollInterval: 50 * time.Millisecond, MaxPollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pgp, err := plasgate.New(plasgate.Config{BaseURL: "https://" + b.hostPort("8443"), PrivateKey: emulator.DefaultPlasGatePrivateKey,
		Secret: emulator.DefaultPlasGateSecret, RedirectURI: redirectURI, HTTPClient: server})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.StateDir = b.stateDir
	cfg.Checks.TTLCap = 20 * time.Second
	if b.v6 {
		cfg.APNDefault.IPType = "ipv6"
	}
	ns := b.tp.Device.Path()
	d := &Daemon{Config: cfg, Log: log, Backends: map[string]RunningBackend{"at": backend},
		Providers: map[string]verify.Provider{"idlayr": idp, "plasgate": pgp},
		Pinner: NewNetPinner(netbind.NewBinder(netbind.Options{NetNS: ns}), netbind.ManageAuto,
			netbind.ClientOptions{NetNS: ns, RootCAs: roots})}
	sock := filepath.Join(dir, "s.sock")
	l, err := ListenUnix(sock, 0o600, -1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, l) }()
	stopped := false
	b.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("daemon did not stop")
		}
		for _, m := range b.sims {
			m.Unplug()
		}
	}
	t.Cleanup(b.stop)
	b.client = unixClient(sock)
	b.client.Timeout = 60 * time.Second
	b.ids = nil
	for _, m := range b.sims {
		b.ids = append(b.ids, m.Identity().IMEI)
	}
	b.waitModems(len(b.sims))
}

func (b *bench) waitModems(n int) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var list ModemList
		if b.do("GET", "/v1/modems", nil, &list) == 200 && len(list.Modems) == n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("daemon did not list %d modems", n)
}

// do sends a request to the daemon's socket and decodes the answer.
func (b *bench) do(method, path string, body any, out any) int {
	b.t.Helper()
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, "http://simproof"+path, r)
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

// check runs a check to its end through the API.
func (b *bench) check(req CheckRequest) (*Check, int) {
	b.t.Helper()
	var c Check
	status := b.do("POST", "/v1/checks?wait=60s", req, &c)
	return &c, status
}

func TestEndToEnd(t *testing.T) {
	b := newBench(t, 2, true)
	ctrl := b.ids[2] // the modem whose "bearer" is eth0

	t.Run("idlayr verified over wwan0", func(t *testing.T) {
		b.emu.ResetObservations()
		c, status := b.check(CheckRequest{Provider: "idlayr", PhoneNumber: "+44 7700 900000", Modem: b.ids[0]})
		if status != 200 || c.Status != StatusCompleted || c.Result == nil || c.Result.Verified == nil || !*c.Result.Verified {
			t.Fatalf("status %d check %+v error %+v", status, c, c.Error)
		}
		if c.PhoneNumber != "+447700900000" || c.Result.CheckID == "" {
			t.Errorf("phone %q provider check %q", c.PhoneNumber, c.Result.CheckID)
		}
		b.requireCellular(t, c, 0)
	})
	t.Run("idlayr v0.2 verified", func(t *testing.T) {
		b.emu.ResetObservations()
		c, _ := b.check(CheckRequest{Provider: "idlayr", Version: "v0.2", PhoneNumber: "+447700900001", Modem: b.ids[1]})
		if c.Status != StatusCompleted || c.Result == nil || c.Result.Verified == nil || !*c.Result.Verified {
			t.Fatalf("check %+v error %+v", c, c.Error)
		}
		b.requireCellular(t, c, 1)
	})
	t.Run("wrong SIM not verified", func(t *testing.T) {
		c, _ := b.check(CheckRequest{Provider: "idlayr", PhoneNumber: "+447700900000", Modem: b.ids[1]})
		if c.Status != StatusCompleted || c.Result == nil || c.Result.Verified == nil || *c.Result.Verified {
			t.Fatalf("check %+v error %+v", c, c.Error)
		}
	})
	t.Run("plasgate verified over wwan1", func(t *testing.T) {
		b.emu.ResetObservations()
		c, _ := b.check(CheckRequest{Provider: "plasgate", PhoneNumber: "+447700900001", Modem: b.ids[1]})
		if c.Status != StatusCompleted || c.Result == nil || c.Result.Verified == nil || !*c.Result.Verified {
			t.Fatalf("check %+v error %+v", c, c.Error)
		}
		b.requireCellular(t, c, 1)
	})
	t.Run("negative control through eth0", func(t *testing.T) {
		for _, p := range []string{"idlayr", "plasgate"} {
			c, _ := b.check(CheckRequest{Provider: p, PhoneNumber: "+447700900000", Modem: ctrl})
			if c.Status != StatusCompleted || c.Result == nil || c.Result.Verified == nil || *c.Result.Verified ||
				c.Result.Reason != "not_mobile_ip" {
				t.Fatalf("%s over eth0: check %+v result %+v error %+v", p, c, c.Result, c.Error)
			}
			for _, h := range c.Trace {
				if h.Interface != "eth0" {
					t.Errorf("%s control hop on %q", p, h.Interface)
				}
			}
		}
	})
	t.Run("modem chosen by number", func(t *testing.T) {
		// sims: is not configured; the SIMs' own numbers (+CNUM) decide.
		c, _ := b.check(CheckRequest{Provider: "idlayr", PhoneNumber: "+447700900001"})
		if c.Modem != b.ids[1] || c.Status != StatusCompleted {
			t.Fatalf("chose %s (status %s), want %s", c.Modem, c.Status, b.ids[1])
		}
	})
	t.Run("device-only open", func(t *testing.T) {
		// The customer's backend creates the check and hands the device its URL.
		checkURL, checkID := b.createV01(t, "447700900000")
		var res OpenResponse
		if st := b.do("POST", "/v1/modems/"+b.ids[0]+"/open", map[string]any{"url": checkURL}, &res); st != 200 {
			t.Fatalf("open: %d", st)
		}
		if res.FinalStatus != 200 || res.Interface != "wwan0" || len(res.Trace) < 3 {
			t.Fatalf("open result %+v", res.Result)
		}
		if v, ok := b.emu.Check(checkID); !ok || v.Status != "COMPLETED" || !v.Match {
			t.Errorf("emulator's check after the device step: %+v", v)
		}
	})
	t.Run("device-only check", func(t *testing.T) {
		checkURL, _ := b.createV01(t, "447700900001")
		c, _ := b.check(CheckRequest{URL: checkURL, Modem: b.ids[1]})
		if c.Status != StatusCompleted || c.Result == nil || c.Result.Verified != nil || c.Result.Device == nil ||
			c.Result.Device.FinalStatus != 200 {
			t.Fatalf("check %+v result %+v", c, c.Result)
		}
	})
	t.Run("idempotent replay", func(t *testing.T) {
		before := b.emu.Stats().ChecksCreated
		req := CheckRequest{Provider: "idlayr", PhoneNumber: "+447700900000", Modem: b.ids[0], IdempotencyKey: "order-42"}
		c1, _ := b.check(req)
		c2, _ := b.check(req)
		if c1.ID != c2.ID || c2.Status != StatusCompleted {
			t.Fatalf("replay gave %s (%s), first %s", c2.ID, c2.Status, c1.ID)
		}
		if n := b.emu.Stats().ChecksCreated - before; n != 1 {
			t.Errorf("%d provider checks for one idempotency key", n)
		}
	})
}

// requireCellular asserts the device step of c used modem i's interface and
// address only, and that the operator saw every device request from the SIM's
// carrier address, none from eth0.
func (b *bench) requireCellular(t *testing.T, c *Check, i int) {
	t.Helper()
	want := b.tp.Modems[i]
	if len(c.Trace) < 3 {
		t.Fatalf("trace has %d hops", len(c.Trace))
	}
	for _, h := range c.Trace {
		if h.Interface != want.Interface || !strings.HasPrefix(h.LocalAddress, want.Addr4.Addr().String()+":") {
			t.Errorf("hop %s left via %s from %s", h.URL, h.Interface, h.LocalAddress)
		}
	}
	ops := 0
	for _, r := range b.emu.Requests() {
		if r.Role == emulator.RoleOperator {
			ops++
			if r.Source != want.Addr4.Addr() {
				t.Errorf("operator saw %s %s from %s, want %s", r.Method, r.Path, r.Source, want.Addr4.Addr())
			}
		}
	}
	if ops == 0 {
		t.Error("the operator saw no request")
	}
}

// createV01 creates an IDlayr v0.1 check server-side, as a customer's
// backend would, and returns its check_url and id.
func (b *bench) createV01(t *testing.T, digits string) (string, string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: b.tp.Device.DialContext(&net.Dialer{}),
		TLSClientConfig: &tls.Config{RootCAs: b.emu.CertPool()}}}
	req, _ := http.NewRequest("POST", idlayrURL+"/oauth2/v1/token", strings.NewReader("grant_type=client_credentials&scope=phone_check"))
	req.SetBasicAuth(emulator.DefaultClientID, emulator.DefaultClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	doJSON(t, hc, req, &tok)
	req, _ = http.NewRequest("POST", idlayrURL+"/phone_check/v0.1/checks", strings.NewReader(`{"phone_number":"`+digits+`"}`))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	var chk struct {
		CheckID string `json:"check_id"`
		Links   struct {
			CheckURL struct {
				Href string `json:"href"`
			} `json:"check_url"`
		} `json:"_links"`
	}
	doJSON(t, hc, req, &chk)
	return chk.Links.CheckURL.Href, chk.CheckID
}

func doJSON(t *testing.T, hc *http.Client, req *http.Request, out any) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 || json.Unmarshal(raw, out) != nil {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, raw)
	}
}

// TestProviderOutcomes drives every provider ending the emulator can
// produce through the daemon in namespaces, and checks each lands in its row
// of api.md's outcome table.
func TestProviderOutcomes(t *testing.T) {
	b := newBench(t, 1, false)
	const phone = "+447700900000"
	tests := []struct {
		name     string
		provider string
		version  string
		faults   emulator.Faults
		status   string
		verified string // "true", "false", "" (no result)
		code     string // result.reason or error.code
	}{
		{"redirect loop", "idlayr", "", emulator.Faults{RedirectLoop: true}, StatusFailed, "", "redirect_loop"},
		{"hop cap", "idlayr", "", emulator.Faults{ExtraHops: 8}, StatusFailed, "", "redirect_limit"},
		{"412 not mobile", "idlayr", "", emulator.Faults{NotMobileIP: true}, StatusCompleted, "false", "not_mobile_ip"},
		{"409 mismatch", "idlayr", "", emulator.Faults{Mismatch: true}, StatusCompleted, "false", "operator_mismatch"},
		{"501 unsupported", "idlayr", "", emulator.Faults{RedirectUnsupported: true}, StatusFailed, "", "unsupported_operator"},
		{"400 mno not supported", "idlayr", "", emulator.Faults{MNONotSupported: true}, StatusFailed, "", "unsupported_operator"},
		{"429 with Retry-After honoured", "idlayr", "", emulator.Faults{RateLimitPolls: 1, RetryAfter: time.Second}, StatusCompleted, "true", ""},
		{"5xx while polling, bounded", "idlayr", "", emulator.Faults{ServerErrorPolls: 2}, StatusCompleted, "true", ""},
		{"slow hop within the hop timeout", "idlayr", "", emulator.Faults{SlowHop: 300 * time.Millisecond}, StatusCompleted, "true", ""},
		{"badly encoded Location", "idlayr", "", emulator.Faults{BadLocation: true}, StatusCompleted, "true", ""},
		{"expired", "idlayr", "", emulator.Faults{Expire: true, TTL: 2 * time.Second}, StatusFailed, "", "expired"},
		{"provider ERROR", "idlayr", "", emulator.Faults{ErrorCode: "mno_error"}, StatusFailed, "", "provider_error"},
		{"v0.2 redirect loop", "idlayr", "v0.2", emulator.Faults{RedirectLoop: true}, StatusFailed, "", "redirect_loop"},
		{"plasgate access_denied", "plasgate", "", emulator.Faults{PlasGateError: "access_denied"}, StatusCompleted, "false", "not_mobile_ip"},
		{"plasgate state mismatch", "plasgate", "", emulator.Faults{StateMismatch: true}, StatusFailed, "", "bad_redirect"},
		{"plasgate 403 on exchange", "plasgate", "", emulator.Faults{Exchange403: true}, StatusFailed, "", "provider_auth_failed"},
		{"plasgate 500 on exchange", "plasgate", "", emulator.Faults{Exchange500: true}, StatusFailed, "", "provider_error"},
		{"plasgate boolean verified", "plasgate", "", emulator.Faults{VerifiedBool: true}, StatusCompleted, "true", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.emu.ClearFaults()
			b.emu.SetFaults(phone, tt.faults)
			defer b.emu.ClearFaults()
			c, _ := b.check(CheckRequest{Provider: tt.provider, Version: tt.version, PhoneNumber: phone, Modem: b.ids[0]})
			verified, code := "", ""
			if c.Result != nil && c.Result.Result != nil {
				if c.Result.Verified != nil {
					verified = fmt.Sprint(*c.Result.Verified)
				}
				code = c.Result.Reason
			}
			if c.Error != nil {
				code = c.Error.Code
			}
			if c.Status != tt.status || verified != tt.verified || code != tt.code {
				t.Fatalf("status %s verified %q code %q; want %s %q %q (error %+v)", c.Status, verified, code,
					tt.status, tt.verified, tt.code, c.Error)
			}
			if c.Status == StatusCompleted && c.Error != nil {
				t.Errorf("a completed check carries an error: %+v", c.Error)
			}
		})
	}
}

// TestRestartMidCheck kills the daemon core while checks are in their device
// step and starts it again on the same journal: an IDlayr v0.1 check is
// resumed by polling its provider id; a v0.2 check (whose code died with the
// process) is interrupted with its provider id. Neither is lost.
func TestRestartMidCheck(t *testing.T) {
	b := newBench(t, 2, false)
	b.emu.SetFaults("+447700900000", emulator.Faults{SlowHop: 30 * time.Second, TTL: 3 * time.Second})
	b.emu.SetFaults("+447700900001", emulator.Faults{SlowHop: 30 * time.Second})
	var c1, c2 Check
	if st := b.do("POST", "/v1/checks", CheckRequest{Provider: "idlayr", PhoneNumber: "+447700900000", Modem: b.ids[0]}, &c1); st != 202 {
		t.Fatalf("submit: %d", st)
	}
	if st := b.do("POST", "/v1/checks", CheckRequest{Provider: "idlayr", Version: "v0.2", PhoneNumber: "+447700900001", Modem: b.ids[1]}, &c2); st != 202 {
		t.Fatalf("submit: %d", st)
	}
	for _, chk := range []*Check{&c1, &c2} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var c Check
			b.do("GET", "/v1/checks/"+chk.ID, nil, &c)
			if c.Stage == "device" && c.ProviderCheck != "" {
				chk.ProviderCheck = c.ProviderCheck
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("check %s never reached its device step: %+v", chk.ID, c)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	b.stop() // the daemon dies mid-check
	b.emu.ClearFaults()
	b.start(2, false)

	var r1, r2 Check
	b.do("GET", "/v1/checks/"+c1.ID+"?wait=30s", nil, &r1)
	b.do("GET", "/v1/checks/"+c2.ID+"?wait=30s", nil, &r2)
	// The v0.1 check was resumed: its device step never finished, so the
	// provider expires it, and the poll says so.
	if r1.Status != StatusFailed || r1.Error == nil || r1.Error.Code != "expired" || r1.ProviderCheck != c1.ProviderCheck {
		t.Errorf("v0.1 after restart: %s %+v provider %q", r1.Status, r1.Error, r1.ProviderCheck)
	}
	if r2.Status != StatusInterrupted || r2.Error == nil || r2.Error.Code != "interrupted" ||
		!strings.Contains(r2.Error.Message, r2.ProviderCheck) || r2.ProviderCheck == "" {
		t.Errorf("v0.2 after restart: %s %+v provider %q", r2.Status, r2.Error, r2.ProviderCheck)
	}
	// Both are in the list, nothing lost.
	var list CheckList
	b.do("GET", "/v1/checks", nil, &list)
	seen := map[string]bool{}
	for _, c := range list.Checks {
		seen[c.ID] = true
	}
	if !seen[c1.ID] || !seen[c2.ID] {
		t.Errorf("checks missing after restart: %v", seen)
	}
}

// TestModemGoneMidCheck unplugs the modem while its check is in the device
// step: the check fails with modem_gone, the daemon keeps serving, and the
// modem returns when plugged back.
func TestModemGoneMidCheck(t *testing.T) {
	b := newBench(t, 1, false)
	b.emu.SetFaults("+447700900000", emulator.Faults{SlowHop: 30 * time.Second})
	var c Check
	b.do("POST", "/v1/checks", CheckRequest{Provider: "idlayr", PhoneNumber: "+447700900000", Modem: b.ids[0]}, &c)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var cur Check
		b.do("GET", "/v1/checks/"+c.ID, nil, &cur)
		if cur.Stage == "device" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reached the device step: %+v", cur)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.sims[0].Unplug()
	var done Check
	b.do("GET", "/v1/checks/"+c.ID+"?wait=20s", nil, &done)
	if done.Status != StatusFailed || done.Error == nil || done.Error.Code != "modem_gone" {
		t.Fatalf("after unplug: %s %+v", done.Status, done.Error)
	}
	var h Health
	if st := b.do("GET", "/v1/health", nil, &h); st != 200 {
		t.Fatalf("daemon stopped serving: %d", st)
	}
	b.emu.ClearFaults()
	if err := b.sims[0].Plug(); err != nil {
		t.Fatal(err)
	}
	b.waitModems(1)
	c2, _ := b.check(CheckRequest{Provider: "idlayr", PhoneNumber: "+447700900000", Modem: b.ids[0]})
	if c2.Status != StatusCompleted {
		t.Fatalf("check after replug: %s %+v", c2.Status, c2.Error)
	}
}

// TestNoSecretsAtRest runs checks with real-looking secrets and requires
// that none of them reaches the logs, the API's traces and errors, or the
// journal file.
func TestNoSecretsAtRest(t *testing.T) {
	b := newBench(t, 1, false)
	var answers []string
	for _, req := range []CheckRequest{
		{Provider: "idlayr", PhoneNumber: "+447700900000"},
		{Provider: "idlayr", Version: "v0.2", PhoneNumber: "+447700900000"},
		{Provider: "plasgate", PhoneNumber: "+447700900000"},
	} {
		var raw json.RawMessage
		b.do("POST", "/v1/checks?wait=30s", req, &raw)
		answers = append(answers, string(raw))
	}
	b.emu.SetFaults("+447700900000", emulator.Faults{Exchange403: true})
	var raw json.RawMessage
	b.do("POST", "/v1/checks?wait=30s", CheckRequest{Provider: "plasgate", PhoneNumber: "+447700900000"}, &raw)
	answers = append(answers, string(raw))
	b.stop()
	journal, err := os.ReadFile(filepath.Join(b.stateDir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{emulator.DefaultClientSecret, emulator.DefaultPlasGatePrivateKey, emulator.DefaultPlasGateSecret,
		"xP4tZ-G7fn3Y", "rounds=535000"}
	places := map[string]string{"journal": string(journal), "logs": b.logs.String(), "api": strings.Join(answers, "\n")}
	for where, text := range places {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s holds the secret %q", where, s)
			}
		}
		for _, param := range []string{"?code=", "&code=", "?state=", "&state=", "session_state=", `"access_token":`} {
			for _, m := range findAll(text, param) {
				if v := strings.Trim(m, `" `); v != "" && !strings.HasPrefix(v, "REDACTED") {
					t.Errorf("%s holds %s%s", where, param, m)
				}
			}
		}
	}
	// The traces do carry the parameters, redacted: the scan above saw them.
	if !strings.Contains(string(journal), "state=REDACTED") || !strings.Contains(places["api"], "state=REDACTED") {
		t.Error("no redacted state parameter in the journal or the API: the scan would pass vacuously")
	}
}

// findAll returns what follows each occurrence of key, up to a delimiter.
func findAll(text, key string) []string {
	var out []string
	for i := strings.Index(text, key); i >= 0; {
		rest := text[i+len(key):]
		end := strings.IndexAny(rest, "&\"' \n,}")
		if end < 0 {
			end = len(rest)
		}
		out = append(out, rest[:end])
		next := strings.Index(rest, key)
		if next < 0 {
			break
		}
		i += len(key) + next
	}
	return out
}

// TestConnectDisconnectRestores brings a data session up through the API:
// the AT backend activates the context on the simulator, netbind applies
// the address the modem reported in +CGCONTRDP to the veth with a table and
// rules of the modem's own; disconnect takes back exactly that, leaving the
// device namespace as it was.
func TestConnectDisconnectRestores(t *testing.T) {
	b := newBench(t, 1, false)
	before := netState(t, b.tp.Device)
	var m struct {
		Data struct {
			Connected bool   `json:"connected"`
			Interface string `json:"interface"`
			IPv4      struct {
				Address string `json:"address"`
				Prefix  int    `json:"prefix"`
			} `json:"ipv4"`
		} `json:"data"`
	}
	if st := b.do("POST", "/v1/modems/"+b.ids[0]+"/connect", nil, &m); st != 200 {
		t.Fatalf("connect: %d %+v", st, m)
	}
	want := b.tp.Modems[0]
	if !m.Data.Connected || m.Data.Interface != "wwan0" || m.Data.IPv4.Address != want.Addr4.Addr().String() {
		t.Fatalf("data after connect: %+v", m.Data)
	}
	if ctx, ok := b.sims[0].Context(1); !ok || !ctx.Active {
		t.Fatalf("simulator context not active: %+v", ctx)
	}
	up := netState(t, b.tp.Device)
	if !strings.Contains(up, "addr wwan0 "+want.Addr4.String()) || !strings.Contains(up, "oif wwan0") {
		t.Fatalf("namespace after connect lacks the bearer:\n%s", up)
	}
	if st := b.do("POST", "/v1/modems/"+b.ids[0]+"/disconnect", nil, &m); st != 200 || m.Data.Connected {
		t.Fatalf("disconnect: %d %+v", st, m.Data)
	}
	if ctx, _ := b.sims[0].Context(1); ctx.Active {
		t.Error("simulator context still active")
	}
	if after := netState(t, b.tp.Device); after != before {
		t.Errorf("namespace not restored.\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// netState is a namespace's addresses, routes of every table and rules, as
// sorted text.
func netState(t *testing.T, ns *nstest.NS) string {
	t.Helper()
	var lines []string
	run := func(args ...string) {
		out, err := ns.Command(context.Background(), "ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			lines = append(lines, strings.Join(strings.Fields(l), " "))
		}
	}
	run("-o", "addr", "show")
	run("route", "show", "table", "all")
	run("-6", "route", "show", "table", "all")
	run("rule", "show")
	run("-6", "rule", "show")
	var out []string
	for _, l := range lines {
		// Normalise "N: wwan0 inet A/P ..." to "addr wwan0 A/P" and drop
		// counters that change on their own (IPv6 address lifetimes).
		f := strings.Fields(l)
		if len(f) > 3 && (f[2] == "inet" || f[2] == "inet6") {
			l = "addr " + f[1] + " " + f[3]
		}
		if strings.Contains(l, "expires") {
			continue
		}
		out = append(out, l)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestCheckOverDHCPBearer: a Quectel modem in ECM mode serves DHCP on its
// network function instead of reporting the address over AT. simproof
// runs its DHCPv4 client on the interface (brought up first), applies the
// lease, and the check leaves through it from the leased address.
func TestCheckOverDHCPBearer(t *testing.T) {
	var tp *nstest.Topology
	b := newBenchWith(t, 1, false, func(_ int, m *sim.Modem) {
		if err := m.UseVendor("quectel-ecm"); err != nil {
			t.Fatal(err)
		}
	}, "quectel-ecm")
	tp = b.tp
	acks := startDHCPServer(t, tp)
	b.tp.Device.SetDown(t, "wwan0") // an ECM function may come up down
	c, status := b.check(CheckRequest{Provider: "idlayr", PhoneNumber: "+447700900000", Modem: b.ids[0]})
	if status != 200 || c.Status != StatusCompleted || c.Result == nil || c.Result.Verified == nil || !*c.Result.Verified {
		t.Fatalf("check over the DHCP bearer: %d %s %+v", status, c.Status, c.Error)
	}
	b.requireCellular(t, c, 0)
	if acks.Load() == 0 {
		t.Error("the address did not come from the modem's DHCP server")
	}
	var m map[string]any
	b.do("GET", "/v1/modems/"+b.ids[0], nil, &m)
	if d := m["data"].(map[string]any); d["interface"] != "wwan0" {
		t.Errorf("data %v", d)
	}
}

// startDHCPServer answers DHCP on the carrier side of wwan0 with the
// modem's bearer address, as an ECM modem's own DHCP server does.
func startDHCPServer(t *testing.T, tp *nstest.Topology) *atomic.Int64 {
	t.Helper()
	m := tp.Modems[0]
	var acks atomic.Int64
	handler := func(conn net.PacketConn, peer net.Addr, req *dhcpv4.DHCPv4) {
		mt := map[dhcpv4.MessageType]dhcpv4.MessageType{dhcpv4.MessageTypeDiscover: dhcpv4.MessageTypeOffer,
			dhcpv4.MessageTypeRequest: dhcpv4.MessageTypeAck}[req.MessageType()]
		if mt == dhcpv4.MessageTypeNone {
			return
		}
		gw := m.Gateway4.AsSlice()
		resp, err := dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(mt), dhcpv4.WithYourIP(m.Addr4.Addr().AsSlice()),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(gw)), dhcpv4.WithNetmask(net.CIDRMask(m.Addr4.Bits(), 32)),
			dhcpv4.WithRouter(gw), dhcpv4.WithDNS(tp.CarrierDNS4.AsSlice()), dhcpv4.WithLeaseTime(3600))
		if err == nil {
			_, _ = conn.WriteTo(resp.ToBytes(), peer)
			if mt == dhcpv4.MessageTypeAck {
				acks.Add(1)
			}
		}
	}
	var srv *server4.Server
	if err := tp.Carrier.Do(func() (err error) {
		srv, err = server4.NewServer(m.Peer, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, handler)
		return err
	}); err != nil {
		t.Fatalf("dhcp server: %v", err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	return &acks
}

// TestIPv6OnlyBearer: an IPv6-only bearer (a NAT64 carrier's) through the
// whole daemon: the modem reports only an IPv6 context, netbind applies it
// with an IPv6 table and rules, and both providers' device steps leave
// through wwan0 from the SIM's IPv6 address.
func TestIPv6OnlyBearer(t *testing.T) {
	b := newBenchOpts(t, 1, false, &bench{v6: true})
	want := b.tp.Modems[0].Addr6.Addr()
	for _, p := range []string{"idlayr", "plasgate"} {
		b.emu.ResetObservations()
		c, _ := b.check(CheckRequest{Provider: p, PhoneNumber: "+447700900000", Modem: b.ids[0]})
		if c.Status != StatusCompleted || c.Result == nil || c.Result.Verified == nil || !*c.Result.Verified {
			t.Fatalf("%s over IPv6: %s %+v", p, c.Status, c.Error)
		}
		for _, h := range c.Trace {
			if h.Interface != "wwan0" || !strings.HasPrefix(h.LocalAddress, "["+want.String()+"]:") {
				t.Errorf("%s hop %s via %s from %s", p, h.URL, h.Interface, h.LocalAddress)
			}
		}
		for _, r := range b.emu.Requests() {
			if r.Role == emulator.RoleOperator && r.Source != want {
				t.Errorf("operator saw %s from %s", r.Path, r.Source)
			}
		}
	}
	var m map[string]any
	b.do("GET", "/v1/modems/"+b.ids[0], nil, &m)
	if d := m["data"].(map[string]any); d["ipv4"] != nil || d["ipv6"] == nil {
		t.Errorf("data of an IPv6-only bearer: %v", d)
	}
}
