package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/internal/version"
	"github.com/simproof/simproof/modem/at"
	"github.com/simproof/simproof/modem/sim"
	"github.com/simproof/simproof/netbind"
)

// Run is the daemon: it starts the configured backends (and the built-in
// simulator when asked), serves the socket API, and returns when ctx ends.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

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
	l, err := ListenUnix(cfg.Socket.Path, mode, gid)
	if err != nil {
		return err
	}
	defer l.Close()

	hub := NewHub(256)
	reg := NewRegistry(hub)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	ports := atPorts(cfg)
	if n := cfg.Simulator.Modems; n > 0 {
		simPorts, stop, err := startSimulators(cfg, n, log)
		if err != nil {
			return err
		}
		defer stop()
		ports = append(ports, simPorts...)
	}
	var statusFns []func() BackendStatus
	if len(ports) > 0 {
		b := at.NewBackend(at.BackendOptions{Ports: ports, CommandTimeout: cfg.AT.CommandTimeout,
			RefreshEvery: cfg.AT.RefreshEvery, Log: log, Trace: cfg.AT.Trace})
		wg.Add(2)
		go func() { defer wg.Done(); b.Run(ctx) }()
		go func() { defer wg.Done(); reg.Follow(ctx, b) }()
		statusFns = append(statusFns, func() BackendStatus {
			st, e := b.Status()
			return BackendStatus{Name: "at", State: st, Error: e}
		})
	}

	journal, err := OpenJournal(cfg.StateDir)
	if err != nil {
		return err
	}
	defer journal.Close()
	providers, provStatus := buildProviders(cfg)
	for _, st := range provStatus {
		if st.State == "failed" {
			log.Error("provider not usable", "provider", st.Name, "err", st.Error)
		}
	}
	binder := netbind.NewBinder(netbind.Options{TableBase: cfg.Data.TableBase, RulePriority: cfg.Data.RulePriority})
	pinner := newNetPinner(binder, netbind.Manage(cfg.Data.ManageInterface),
		netbind.ClientOptions{ExtraCAFile: cfg.TLS.CAFile, DialTimeout: cfg.Checks.HopTimeout,
			ResponseHeaderTimeout: cfg.Checks.HopTimeout})
	sched := NewScheduler(SchedulerOptions{Checks: cfg.Checks, SIMs: cfg.SIMs, APN: cfg.APNDefault,
		IDlayrVersion: cfg.Providers.IDlayr.Version, Providers: providers, Pinner: pinner, Journal: journal,
		Registry: reg, Hub: hub, Log: log})
	if err := sched.Start(ctx); err != nil {
		return fmt.Errorf("recover the journal: %w", err)
	}
	defer sched.Wait()
	defer pinner.UnpinAll()

	api := &API{Version: version.Version, Started: time.Now(), Registry: reg, Hub: hub,
		Status: func() []BackendStatus {
			out := make([]BackendStatus, 0, len(statusFns)+len(provStatus))
			for _, f := range statusFns {
				out = append(out, f())
			}
			return append(out, provStatus...)
		}}
	h := api.Handler()
	(&CheckAPI{S: sched, Registry: reg}).Register(api)
	log.Info("simproofd serving", "socket", cfg.Socket.Path, "version", version.Version, "at_ports", len(ports))
	err = Serve(ctx, l, h, log, 10*time.Second)
	cancel()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
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
		link := filepath.Join(dir, fmt.Sprintf("ttySIM%d", i))
		if err := m.ServePTY(link); err != nil {
			stop()
			return nil, nil, fmt.Errorf("simulated modem %d: %w", i, err)
		}
		mods = append(mods, m)
		ports = append(ports, at.PortConfig{Device: link, Profile: "generic", NetDevice: fmt.Sprintf("wwan%d", i), Simulated: true})
		log.Info("simulated modem", "port", link, "imei", m.Identity().IMEI)
	}
	return ports, stop, nil
}
