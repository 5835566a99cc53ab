package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simproof/simproof/agent"
	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/modem/at"
	"github.com/simproof/simproof/modem/sim"
	"github.com/simproof/simproof/netbind"
	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/emulator"
	"github.com/simproof/simproof/verify/idlayr"
	"github.com/simproof/simproof/verify/plasgate"
)

// The provider emulator's public addresses, on the server namespace's
// loopback (nstest's ServerAddr4), reachable from the carrier and the ISP.
const (
	idlayrURL   = "https://192.0.2.80:443"
	plasgateURL = "https://192.0.2.80:8443"
	operatorURL = "http://192.0.2.80:80"
	redirectURI = "https://app.example.test/plasgate/callback"
)

// rig is the daemon core on the bench: simulated modems on ptys whose
// bearers are the carrier addresses of the wwan links, the AT backend, the
// journal, netbind pinning in the device namespace, and providers built as
// simproofd builds them from its configuration (only their server-side
// client dials inside the device namespace, and counts its dials).
type rig struct {
	h        *harness
	net      *benchNet
	emu      *emulator.Emulator
	sims     []*sim.Modem
	ids      []string // modem ids by index
	phones   []string // E.164, by index
	cfg      config.Config
	ports    []at.PortConfig // the simulated modems' pty links
	roots    *x509.CertPool
	caFile   string
	api      *http.Client // the daemon's socket
	sockPath string
	events   *timeline
	logf     *os.File

	serverDials atomic.Int64 // TCP connections the server-side clients opened
	idlayr      *swapProvider
	plasgate    *swapProvider

	cancel context.CancelFunc
	done   chan error
}

func msisdn(i int) string { return fmt.Sprintf("447700900%03d", i%1000) }

func newRig(h *harness, n *benchNet) (*rig, error) {
	r := &rig{h: h, net: n, cfg: config.Default()}
	err := h.guard(func() error {
		tp := n.tp
		subs := map[netip.Addr]string{}
		for i, m := range tp.Modems {
			subs[m.Addr4.Addr()] = msisdn(i)
		}
		emu, err := emulator.New(emulator.Config{IDlayrURL: idlayrURL, PlasGateURL: plasgateURL, OperatorURL: operatorURL,
			Subscribers: subs, MobileRanges: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")}})
		if err != nil {
			return err
		}
		h.Cleanup(func() { emu.Close() })
		for _, s := range []struct {
			role emulator.Role
			addr string
			tls  bool
		}{{emulator.RoleIDlayr, "192.0.2.80:443", true}, {emulator.RolePlasGate, "192.0.2.80:8443", true},
			{emulator.RoleOperator, "192.0.2.80:80", false}} {
			if err := emu.Serve(s.role, tp.Server.Listen(h, "tcp", s.addr), s.tls); err != nil {
				return err
			}
		}
		r.emu, r.roots = emu, emu.CertPool()
		dir := h.TempDir()
		r.caFile = filepath.Join(dir, "ca.pem")
		if err := emu.WriteCA(r.caFile); err != nil {
			return err
		}
		r.logf, err = os.Create(filepath.Join(dir, "simproofd.log"))
		if err != nil {
			return err
		}
		h.Cleanup(func() { r.logf.Close() })
		for i := range tp.Modems {
			m := sim.New(sim.DefaultIdentity(i))
			tm := tp.Modems[i]
			m.SetBearer(sim.BearerConfig{APN: "internet", IPv4: tm.Addr4, Gateway4: tm.Gateway4,
				DNS4: []netip.Addr{tp.CarrierDNS4}})
			h.Cleanup(func() { m.Close() })
			r.sims = append(r.sims, m)
			r.ids = append(r.ids, m.Identity().IMEI)
			r.phones = append(r.phones, "+"+msisdn(i))
		}
		r.idlayr = &swapProvider{name: "idlayr"}
		r.plasgate = &swapProvider{name: "plasgate"}
		if err := r.freshProviders(); err != nil {
			return err
		}
		for i, m := range r.sims {
			link := filepath.Join(dir, fmt.Sprintf("ttySIM%d", i))
			if err := m.ServePTY(link); err != nil {
				return err
			}
			r.ports = append(r.ports, at.PortConfig{Device: link, Simulated: true, NetDevice: tp.Modems[i].Interface})
		}
		return r.start(filepath.Join(dir, "state"))
	})
	return r, err
}

// serverClient is verify.NewServerClient (what simproofd uses for the
// token, create, poll and exchange calls) dialing in the device namespace,
// where the default route is eth0, and counting its connections.
// idlePerHost > 0 overrides its MaxIdleConnsPerHost (a diagnostic, not
// simproofd's configuration).
func (r *rig) serverClient(idlePerHost int) *http.Client {
	c := verify.NewServerClient(r.roots)
	t := c.Transport.(*http.Transport).Clone()
	t.Proxy = nil
	dial := r.net.tp.Device.DialContext(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second})
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		r.serverDials.Add(1)
		return dial(ctx, network, addr)
	}
	if idlePerHost > 0 {
		t.MaxIdleConnsPerHost = idlePerHost
		t.MaxIdleConns = max(t.MaxIdleConns, 4*idlePerHost)
	}
	c.Transport = t
	return c
}

// providerSet is one IDlayr and one PlasGate provider sharing nothing with
// other sets: their own token cache and server-side connections.
type providerSet struct{ idlayr, plasgate verify.Provider }

// newProviders builds providers as simproofd builds them from its
// configuration, with nothing cached: no token, no kept-alive connection.
func (r *rig) newProviders(idlePerHost int) (providerSet, error) {
	c := r.cfg.Checks
	idp, err := idlayr.New(idlayr.Config{Credentials: idlayr.Credentials{ClientID: emulator.DefaultClientID,
		ClientSecret: emulator.DefaultClientSecret, DataResidency: "eu"}, BaseURL: idlayrURL,
		Version: r.cfg.Providers.IDlayr.Version, HTTPClient: r.serverClient(idlePerHost), TTLCap: c.TTLCap,
		MaxHops: c.HopLimit, HopTimeout: c.HopTimeout})
	if err != nil {
		return providerSet{}, err
	}
	pg := r.cfg.Providers.PlasGate
	pgp, err := plasgate.New(plasgate.Config{BaseURL: plasgateURL, PrivateKey: emulator.DefaultPlasGatePrivateKey,
		Secret: emulator.DefaultPlasGateSecret, RedirectURI: redirectURI, Scope: pg.Scope, ExchangePath: pg.ExchangePath,
		IgnoreState: !pg.VerifyState, HTTPClient: r.serverClient(idlePerHost), MaxHops: c.HopLimit, HopTimeout: c.HopTimeout})
	if err != nil {
		return providerSet{}, err
	}
	return providerSet{idlayr: idp, plasgate: pgp}, nil
}

// use makes the daemon's providers ps from its next check on.
func (r *rig) use(ps providerSet) {
	r.idlayr.set(ps.idlayr)
	r.plasgate.set(ps.plasgate)
}

// freshProviders swaps in providers with nothing cached (what a daemon
// has right after it started).
func (r *rig) freshProviders() error {
	ps, err := r.newProviders(0)
	if err != nil {
		return err
	}
	r.use(ps)
	return nil
}

// start runs the daemon core with its journal in stateDir and waits until
// it lists every modem.
func (r *rig) start(stateDir string) error {
	cfg := r.cfg
	cfg.StateDir = stateDir
	r.cfg = cfg
	log := slog.New(slog.NewTextHandler(r.logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	backend := at.NewBackend(at.BackendOptions{Ports: r.ports, CommandTimeout: cfg.AT.CommandTimeout,
		RefreshEvery: cfg.AT.RefreshEvery, Log: log})
	ns := r.net.tp.Device.Path()
	d := &agent.Daemon{Config: cfg, Log: log, Backends: map[string]agent.RunningBackend{"at": backend},
		Providers: map[string]verify.Provider{"idlayr": r.idlayr, "plasgate": r.plasgate},
		Pinner: agent.NewNetPinner(netbind.NewBinder(netbind.Options{NetNS: ns, TableBase: cfg.Data.TableBase,
			RulePriority: cfg.Data.RulePriority}), netbind.Manage(cfg.Data.ManageInterface),
			netbind.ClientOptions{NetNS: ns, RootCAs: r.roots, DialTimeout: cfg.Checks.HopTimeout,
				ResponseHeaderTimeout: cfg.Checks.HopTimeout})}
	sock := filepath.Join(stateDir, "simproof.sock")
	l, err := agent.ListenUnix(sock, 0o600, -1)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- d.Serve(ctx, l) }()
	r.h.Cleanup(r.stop)
	r.api = unixClient(sock, 64)
	r.sockPath = sock
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var list agent.ModemList
		if st, err := r.do(context.Background(), "GET", "/v1/modems", nil, &list); err == nil && st == 200 && len(list.Modems) == len(r.sims) {
			r.events = r.watchEvents(ctx)
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the daemon did not list %d modems within 60 s", len(r.sims))
}

// restart stops the daemon core, replugs every simulated modem (its ports
// close and come back, its data session drops) and starts the core again
// with its journal in stateDir.
func (r *rig) restart(stateDir string) error {
	r.stop()
	for _, m := range r.sims {
		m.Unplug()
		if err := m.Plug(); err != nil {
			return err
		}
	}
	return r.start(stateDir)
}

func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.h.Errorf("daemon: %v", err)
		}
	case <-time.After(20 * time.Second):
		r.h.Errorf("daemon did not stop within 20 s")
	}
}

func unixClient(path string, conns int) *http.Client {
	return &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
}

// do sends one request to the daemon's socket and decodes the answer.
func (r *rig) do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://simproof"+path, rd)
	if err != nil {
		return 0, err
	}
	resp, err := r.api.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %d %.200s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, nil
}

// check runs one check to its end through the API (POST /v1/checks?wait=)
// and returns it with its wall time as the client saw it.
func (r *rig) check(ctx context.Context, provider string, i int) (*agent.Check, time.Duration, error) {
	var c agent.Check
	t0 := time.Now()
	st, err := r.do(ctx, "POST", "/v1/checks?wait=60s",
		agent.CheckRequest{Provider: provider, PhoneNumber: r.phones[i], Modem: r.ids[i]}, &c)
	el := time.Since(t0)
	if err != nil {
		return nil, el, err
	}
	if st != 200 || c.Status != agent.StatusCompleted || c.Result == nil || c.Result.Result == nil ||
		c.Result.Verified == nil || !*c.Result.Verified {
		code := ""
		if c.Error != nil {
			code = c.Error.Code + ": " + c.Error.Message
		}
		return &c, el, fmt.Errorf("%s check on modem %d: HTTP %d, status %s %s", provider, i, st, c.Status, code)
	}
	return &c, el, nil
}

// swapProvider is the daemon's view of a provider whose implementation the
// bench replaces between checks (a fresh one for each cold sample).
type swapProvider struct {
	name string
	mu   sync.Mutex
	p    verify.Provider
}

func (s *swapProvider) set(p verify.Provider) { s.mu.Lock(); s.p = p; s.mu.Unlock() }
func (s *swapProvider) get() verify.Provider  { s.mu.Lock(); defer s.mu.Unlock(); return s.p }
func (s *swapProvider) Name() string          { return s.name }
func (s *swapProvider) Check(ctx context.Context, req verify.Request) (*verify.Result, error) {
	return s.get().Check(ctx, req)
}

// stamp is when the bench saw a check reach a status and stage.
type stamp struct {
	Status, Stage string
	At            time.Time
}

// timeline follows GET /v1/events and keeps, per check, when each
// status/stage was first published: it splits a check into bring-up (connect
// and pin), provider calls and device step without touching the product.
type timeline struct {
	mu     sync.Mutex
	checks map[string][]stamp
}

func (r *rig) watchEvents(ctx context.Context) *timeline {
	tl := &timeline{checks: map[string][]stamp{}}
	ready := make(chan struct{})
	go func() {
		// A client of its own: the stream outlives any request timeout.
		cl := unixClient(r.sockPath, 1)
		cl.Timeout = 0
		var last string
		for first := true; ctx.Err() == nil; first = false {
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://simproof/v1/events", nil)
			if last != "" {
				req.Header.Set("Last-Event-ID", last) // the hub dropped us: resume
			}
			resp, err := cl.Do(req)
			if first {
				close(ready)
			}
			if err != nil {
				return
			}
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			var typ string
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "id: "):
					last = strings.TrimPrefix(line, "id: ")
				case strings.HasPrefix(line, "event: "):
					typ = strings.TrimPrefix(line, "event: ")
				case strings.HasPrefix(line, "data: ") && typ == "check.updated":
					now := time.Now()
					var c struct{ ID, Status, Stage string }
					if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &c) == nil {
						tl.note(c.ID, c.Status, c.Stage, now)
					}
				}
			}
			resp.Body.Close()
		}
	}()
	<-ready
	return tl
}

func (tl *timeline) note(id, status, stage string, at time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, s := range tl.checks[id] {
		if s.Status == status && s.Stage == stage {
			return
		}
	}
	tl.checks[id] = append(tl.checks[id], stamp{status, stage, at})
}

// between is the time from the first stamp matching a to the first
// matching b ("" matches any stage), or false when either is missing.
func (tl *timeline) between(id, aStatus, aStage, bStatus, bStage string) (time.Duration, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var ta, tb time.Time
	for _, s := range tl.checks[id] {
		if ta.IsZero() && s.Status == aStatus && (aStage == "" || s.Stage == aStage) {
			ta = s.At
		}
		if tb.IsZero() && s.Status == bStatus && (bStage == "" || s.Stage == bStage) {
			tb = s.At
		}
	}
	if ta.IsZero() || tb.IsZero() {
		return 0, false
	}
	return tb.Sub(ta), true
}
