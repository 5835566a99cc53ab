package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/internal/version"
	"github.com/simproof/simproof/modem/at"
	"github.com/simproof/simproof/modem/sim"
	"github.com/simproof/simproof/netbind"
	"github.com/simproof/simproof/verify"
)

// RunningBackend is a modem backend the daemon runs and reports on.
type RunningBackend interface {
	Backend
	Run(ctx context.Context)
	Status() (state, detail string)
}

// Daemon is simproofd's core assembled from its parts: Run builds one from
// the configuration; tests build one from parts bound to their namespaces.
type Daemon struct {
	Config         config.Config
	Log            *slog.Logger
	Backends       map[string]RunningBackend
	Providers      map[string]verify.Provider
	ProviderStatus []BackendStatus
	Pinner         Pinner
}

// Run is the daemon: it starts the configured backends (and the built-in
// simulator when asked), serves the socket API, and returns when ctx ends.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	mode, err := cfg.SocketMode()
	if err != nil {
		return err
	}
	gid := -1
	if cfg.Socket.Group != "" {
		g, err := user.LookupGroup(cfg.Socket.Group)
		if err != nil {
			return fmt.Errorf("socket.group: %w", err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	l, err := activatedListener()
	if err != nil {
		return err
	}
	if l == nil {
		if l, err = ListenUnix(cfg.Socket.Path, mode, gid); err != nil {
			return err
		}
	} else {
		log.Info("using the socket systemd passed", "socket", l.Addr().String())
	}
	defer l.Close()

	d := &Daemon{Config: cfg, Log: log, Backends: map[string]RunningBackend{}}
	ports := atPorts(cfg)
	if n := cfg.Simulator.Modems; n > 0 {
		simPorts, stop, err := startSimulators(cfg, n, log)
		if err != nil {
			return err
		}
		defer stop()
		ports = append(ports, simPorts...)
	}
	if len(ports) > 0 {
		d.Backends["at"] = at.NewBackend(at.BackendOptions{Ports: ports, CommandTimeout: cfg.AT.CommandTimeout,
			RefreshEvery: cfg.AT.RefreshEvery, Log: log, Trace: cfg.AT.Trace, PIN: readPIN})
	}
	if cfg.ModemManager.Enabled {
		b, err := newMMBackend(ctx, cfg.ModemManager, log)
		if err != nil {
			return err
		}
		d.Backends["modemmanager"] = b
	}
	d.Providers, d.ProviderStatus = buildProviders(cfg)
	for _, st := range d.ProviderStatus {
		if st.State == "failed" {
			log.Error("provider not usable", "provider", st.Name, "err", st.Error)
		}
	}
	binder := netbind.NewBinder(netbind.Options{TableBase: cfg.Data.TableBase, RulePriority: cfg.Data.RulePriority})
	pinner := NewNetPinner(binder, netbind.Manage(cfg.Data.ManageInterface),
		netbind.ClientOptions{ExtraCAFile: cfg.TLS.CAFile, DialTimeout: cfg.Checks.HopTimeout,
			ResponseHeaderTimeout: cfg.Checks.HopTimeout})
	pinner.loopback = cfg.Simulator.Modems > 0 && cfg.Simulator.Network == "loopback"
	d.Pinner = pinner
	return d.Serve(ctx, l)
}

// Serve runs the parts and the API on l until ctx ends.
func (d *Daemon) Serve(ctx context.Context, l net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg, log := d.Config, d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hub := NewHub(256)
	reg := NewRegistry(hub)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, b := range d.Backends {
		wg.Add(2)
		go func() { defer wg.Done(); b.Run(ctx) }()
		go func() { defer wg.Done(); reg.Follow(ctx, b) }()
	}

	journal, err := OpenJournal(cfg.StateDir)
	if err != nil {
		return err
	}
	defer journal.Close()
	met := NewMetrics()
	sched := NewScheduler(SchedulerOptions{Checks: cfg.Checks, SIMs: cfg.SIMs, APN: cfg.APNDefault, Metrics: met,
		IDlayrVersion: cfg.Providers.IDlayr.Version, Providers: d.Providers, Pinner: d.Pinner, Journal: journal,
		Registry: reg, Hub: hub, Log: log})
	// Deferred in this order so they run the other way round: the workers
	// stop (sched.Wait) before the pinner takes back what they applied.
	if u, ok := d.Pinner.(interface{ UnpinAll() }); ok {
		defer u.UnpinAll()
	}
	if err := sched.Start(ctx); err != nil {
		return fmt.Errorf("recover the journal: %w", err)
	}
	defer sched.Wait()

	api := &API{Version: version.Version, Started: time.Now(), Registry: reg, Hub: hub, Status: d.status,
		Peers: NewPeerPolicy(cfg.Socket.AllowUIDs, cfg.Socket.AllowGIDs)}
	h := api.Handler()
	(&CheckAPI{S: sched, Registry: reg}).Register(api)
	metricsHandler := met.Handler(reg, d.Backends)
	api.Handle("GET /metrics", metricsHandler)
	if cfg.MetricsListen != "" {
		ml, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics_listen %s: %w", cfg.MetricsListen, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /metrics", metricsHandler)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Serve(ctx, ml, mux, log, time.Second); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener stopped", "err", err)
			}
		}()
	}
	log.Info("simproofd serving", "socket", l.Addr().String(), "version", version.Version,
		"backends", len(d.Backends), "providers", len(d.Providers))
	sd := notifier{log: log}
	wg.Add(2)
	go func() { defer wg.Done(); sd.watchdog(ctx, sched.Alive) }()
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			sd.send(fmt.Sprintf("STATUS=%d modems, %d checks running", len(reg.List()), sched.Running()))
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	sd.send("READY=1")
	err = Serve(ctx, l, h, log, 10*time.Second)
	sd.send("STOPPING=1")
	cancel()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func (d *Daemon) status() []BackendStatus {
	out := make([]BackendStatus, 0, len(d.Backends)+len(d.ProviderStatus))
	for name, b := range d.Backends {
		st, e := b.Status()
		out = append(out, BackendStatus{Name: name, State: st, Error: e})
	}
	return append(out, d.ProviderStatus...)
}

// readPIN reads a port's SIM PIN from its pin_file, under the same rules as
// every secret file (not group- or world-readable; $CREDENTIALS_DIRECTORY).
func readPIN(p at.PortConfig) (string, error) {
	if p.PINFile == "" {
		return "", nil
	}
	b, err := verify.ReadSecretFile(SecretPath(p.PINFile))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// LoopbackBearer is simulated modem i's bearer when the simulator runs on
// lo: 127.100.0.i+1/32, an address of its own the operator can tell apart.
func LoopbackBearer(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{127, 100, byte((i + 1) / 256), byte((i + 1) % 256)}), 32)
}

func atPorts(cfg config.Config) []at.PortConfig {
	var out []at.PortConfig
	for _, p := range cfg.AT.Ports {
		out = append(out, at.PortConfig{Device: p.Device, Baud: p.Baud, Profile: p.Profile,
			NetDevice: p.NetDevice, PINFile: p.PINFile})
	}
	return out
}

// startSimulators runs n simulated modems on pseudo-terminals, linked under
// simulator.dir, for the AT backend to drive like real ports.
func startSimulators(cfg config.Config, n int, log *slog.Logger) ([]at.PortConfig, func(), error) {
	dir := cfg.Simulator.Dir
	if dir == "" {
		dir = filepath.Join(filepath.Dir(cfg.Socket.Path), "sim")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("simulator dir: %w", err)
	}
	var mods []*sim.Modem
	stop := func() {
		for _, m := range mods {
			m.Close()
		}
	}
	var ports []at.PortConfig
	for i := 0; i < n; i++ {
		m := sim.New(sim.DefaultIdentity(i))
		netdev := fmt.Sprintf("wwan%d", i)
		if cfg.Simulator.Network == "loopback" {
			netdev = "lo"
			m.SetBearer(sim.BearerConfig{APN: "internet", IPv4: LoopbackBearer(i)})
		}
		link := filepath.Join(dir, fmt.Sprintf("ttySIM%d", i))
		if err := m.ServePTY(link); err != nil {
			stop()
			return nil, nil, fmt.Errorf("simulated modem %d: %w", i, err)
		}
		mods = append(mods, m)
		ports = append(ports, at.PortConfig{Device: link, Profile: "generic", NetDevice: netdev, Simulated: true})
		log.Info("simulated modem", "port", link, "imei", m.Identity().IMEI)
	}
	return ports, stop, nil
}
