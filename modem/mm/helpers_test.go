package mm_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/simproof/simproof/internal/mmtest"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/modem/mm"
	"github.com/simproof/simproof/modem/sim"
)

// probeTimeout bounds how long ModemManager may take to probe and export a
// simulated modem (it takes about a second here; its plugin manager has
// fixed timers of a few seconds on some paths).
const probeTimeout = 30 * time.Second

// bench is one real ModemManager on a private bus with simulated modems.
type bench struct {
	t      *testing.T
	mm     *mmtest.Daemon
	sims   []*sim.Modem
	prefix string // of this bench's abstract socket names
}

// newBench starts a bus, ModemManager and n simulators (not yet handed to
// ModemManager: call plugAll or profile).
func newBench(t *testing.T, n int) *bench {
	t.Helper()
	bus := mmtest.StartBus(t)
	d := mmtest.StartModemManager(t, bus)
	b := &bench{t: t, mm: d, prefix: fmt.Sprintf("%s-%d", portPrefix, benchSeq.Add(1))}
	for i := range n {
		m := sim.New(sim.DefaultIdentity(i))
		if err := m.ListenAbstract(b.port(i)); err != nil {
			t.Fatalf("sim %d: %v", i, err)
		}
		t.Cleanup(func() { m.Close() })
		b.sims = append(b.sims, m)
	}
	return b
}

// portPrefix keeps abstract socket names apart between test processes; a
// helper child inherits its parent's.
var portPrefix = func() string {
	if p := os.Getenv("SIMPROOF_PORT_PREFIX"); p != "" {
		return p
	}
	return fmt.Sprintf("abstract:simproof-mm-%d", os.Getpid())
}()

// benchSeq keeps the benches of parallel tests apart.
var benchSeq atomic.Int64

func (b *bench) port(i int) string { return fmt.Sprintf("%s-%d", b.prefix, i) }
func profile(i int) string         { return fmt.Sprintf("bench%d", i) }

// profile hands simulator i to ModemManager (again).
func (b *bench) profile(i int) {
	b.t.Helper()
	if err := b.mm.SetProfile(context.Background(), profile(i), "generic", b.port(i)); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bench) profileAll() {
	for i := range b.sims {
		b.profile(i)
	}
}

func (b *bench) backend(opts mm.Options) *mm.Backend {
	b.t.Helper()
	opts.BusAddress = b.mm.Bus.Address
	if opts.Logger == nil {
		opts.Logger = testLogger(b.t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	be, err := mm.New(ctx, opts)
	if err != nil {
		b.t.Fatalf("mm.New: %v", err)
	}
	b.t.Cleanup(func() { be.Close() })
	return be
}

// testLogger sends the backend's log to the test log (shown on failure or
// with -v).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&tlogWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

var _ io.Writer = (*tlogWriter)(nil)

// events collects a backend's events so tests can wait for one without
// losing the others.
type events struct {
	mu   sync.Mutex
	all  []modem.Event
	more chan struct{}
}

func collect(t *testing.T, be *mm.Backend) *events {
	e := &events{more: make(chan struct{}, 1)}
	go func() {
		for ev := range be.Events() {
			e.mu.Lock()
			e.all = append(e.all, ev)
			e.mu.Unlock()
			select {
			case e.more <- struct{}{}:
			default:
			}
		}
	}()
	return e
}

// mark returns a position: wait looks only at events after it.
func (e *events) mark() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.all)
}

// wait returns the first event after from that matches, failing the test
// after timeout.
func (e *events) wait(t *testing.T, from int, timeout time.Duration, what string, match func(modem.Event) bool) modem.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		e.mu.Lock()
		for i := from; i < len(e.all); i++ {
			if match(e.all[i]) {
				ev := e.all[i]
				e.mu.Unlock()
				return ev
			}
		}
		from = len(e.all)
		e.mu.Unlock()
		select {
		case <-e.more:
		case <-deadline:
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

func kindFor(kind modem.EventKind, id string) func(modem.Event) bool {
	return func(ev modem.Event) bool { return ev.Kind == kind && ev.Info.ID == id }
}

// waitInfo waits until the backend lists modem id matching cond.
func waitInfo(t *testing.T, be *mm.Backend, ev *events, id string, timeout time.Duration, what string, cond func(modem.Info) bool) modem.Info {
	t.Helper()
	from := 0
	deadline := time.Now().Add(timeout)
	for {
		if m, ok := be.Get(id); ok && cond(m.Info()) {
			return m.Info()
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("modem %s: no %s within %v; now %+v", id, what, timeout, be.List())
		}
		// Any event may be the one that makes cond true.
		ev.wait(t, from, left, what, func(modem.Event) bool { return true })
		from = ev.mark()
	}
}

// pathOf finds ModemManager's object for the modem whose
// EquipmentIdentifier is id, straight from the daemon.
func pathOf(t *testing.T, b *bench, id string) dbus.ObjectPath {
	t.Helper()
	var objs map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	err := b.mm.Conn().Object("org.freedesktop.ModemManager1", "/org/freedesktop/ModemManager1").
		Call("org.freedesktop.DBus.ObjectManager.GetManagedObjects", 0).Store(&objs)
	if err != nil {
		t.Fatal(err)
	}
	for path, ifaces := range objs {
		if m, ok := ifaces["org.freedesktop.ModemManager1.Modem"]; ok {
			if eq, _ := m["EquipmentIdentifier"].Value().(string); eq == id {
				return path
			}
		}
	}
	t.Fatalf("no ModemManager object for %s", id)
	return ""
}
