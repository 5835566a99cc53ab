// Package mm is the ModemManager backend: it lives beside the ModemManager
// daemon that already owns the modems on most gateways, mirrors its modems
// (Modem, Modem3gpp, Sim and Bearer objects) into modem.Info over D-Bus, and
// brings data sessions up through Modem.Simple.
//
// It is event-driven: one goroutine follows ObjectManager's
// InterfacesAdded/InterfacesRemoved, PropertiesChanged and the daemon's
// NameOwnerChanged; nothing is polled. A ModemManager restart is a full
// resync on the same Backend.
package mm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/simproof/simproof/modem"
)

// Options configure a Backend. The zero value talks to ModemManager on the
// system bus and leaves modems as ModemManager has them.
type Options struct {
	// BusAddress is "" or "system" for the system bus, "session" for the
	// session bus, or a D-Bus address (unix:path=…), e.g. a test's private
	// bus where ModemManager runs with --test-session.
	BusAddress string
	// EnableModems enables a modem ModemManager keeps disabled, when it
	// appears and before a Connect, so registration and signal are known
	// before any check runs. Without it Modem.Simple.Connect still enables a
	// disabled modem (that is ModemManager's behaviour).
	EnableModems bool
	// CallTimeout bounds each D-Bus call the backend makes on its own
	// (property reads, resync). Default 10 s.
	CallTimeout time.Duration
	// ConnectTimeout bounds Simple.Connect, which waits for registration
	// inside ModemManager. Default 90 s; a caller's context may cut it short.
	ConnectTimeout time.Duration
	// EventBuffer is the Events channel's capacity. When a reader falls that
	// far behind, the oldest event is dropped (each event carries the whole
	// modem, so the newest state still arrives). Default 256.
	EventBuffer int
	// Logger receives the backend's diagnostics. Default slog.Default().
	Logger *slog.Logger
}

// Backend mirrors ModemManager's modems. Its methods are safe for concurrent
// use.
type Backend struct {
	opts   Options
	log    *slog.Logger
	events chan modem.Event
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop has exited

	// dropped is written by the loop only.
	dropped uint64
	// resyncs counts full resyncs (start, ModemManager restarts, bus
	// reconnects), for metrics.
	resyncs atomic.Uint64

	// mu guards the fields below. The loop goroutine is their only writer,
	// except owned, which Connect and Disconnect also write; the loop reads
	// the others without mu, owned only with it, and never holds mu across
	// a D-Bus call.
	mu      sync.Mutex
	conn    *dbus.Conn
	owner   string                              // ModemManager's unique bus name, "" when absent
	syncSeq dbus.Sequence                       // ObjectManager signals older than the last snapshot are stale
	modems  map[dbus.ObjectPath]*entry          // by Modem object path
	sims    map[dbus.ObjectPath]*remote         // SIM objects the modems refer to
	bearers map[dbus.ObjectPath]*remote         // Bearer objects the modems refer to
	owned   map[dbus.ObjectPath]dbus.ObjectPath // bearers this backend created → their modem
	// pending holds interfaces of objects that have no Modem interface
	// (yet): ModemManager adds an object's interfaces in one signal, but
	// nothing in D-Bus promises the Modem one comes first.
	pending map[dbus.ObjectPath]map[string]props
}

// maxPending bounds pending against a bus that floods us with objects.
const maxPending = 64

// entry is one exported Modem object.
type entry struct {
	path      dbus.ObjectPath
	ifaces    map[string]props
	seq       dbus.Sequence // PropertiesChanged older than this are already in ifaces
	info      modem.Info    // as last computed (and announced, if announced)
	announced bool
	enabling  bool // EnableModems: an Enable was sent for this object
	// ctx is cancelled with modem.ErrGone when the object goes away, so an
	// operation on it stops at once instead of waiting for a timeout.
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// remote is a SIM or Bearer object's properties (not in ObjectManager, so
// read with GetAll and followed with PropertiesChanged).
type remote struct {
	props props
	seq   dbus.Sequence
}

// New connects to the bus, reads every modem ModemManager exports (if it
// runs) and starts following it. ctx bounds that setup only; the backend
// runs until Close. ModemManager need not be running: its modems appear
// when it starts.
func New(ctx context.Context, opts Options) (*Backend, error) {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 90 * time.Second
	}
	if opts.EventBuffer <= 0 {
		opts.EventBuffer = 256
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Backend{
		opts:    opts,
		log:     opts.Logger.With("backend", BackendName),
		events:  make(chan modem.Event, opts.EventBuffer),
		done:    make(chan struct{}),
		modems:  map[dbus.ObjectPath]*entry{},
		sims:    map[dbus.ObjectPath]*remote{},
		bearers: map[dbus.ObjectPath]*remote{},
		owned:   map[dbus.ObjectPath]dbus.ObjectPath{},
		pending: map[dbus.ObjectPath]map[string]props{},
	}
	b.ctx, b.cancel = context.WithCancel(context.WithoutCancel(ctx))
	conn, sigs, err := b.dial(ctx)
	if err != nil {
		b.cancel()
		return nil, err
	}
	b.conn = conn
	b.resync(ctx, conn)
	go b.run(conn, sigs)
	return b, nil
}

// Close stops following ModemManager and closes the Events channel. It
// leaves every bearer as it is: a data session outlives the agent.
func (b *Backend) Close() error {
	b.cancel()
	b.mu.Lock()
	conn := b.conn
	b.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	<-b.done
	return nil
}

// Resyncs is how many times the backend rebuilt its whole picture from
// ModemManager (at start, after ModemManager restarted, after a bus
// reconnect).
func (b *Backend) Resyncs() uint64 { return b.resyncs.Load() }

// Events delivers Added, Removed and Changed for every modem. A Changed for
// an id the reader has not seen (its Added was dropped) is an addition.
// The channel is closed by Close.
func (b *Backend) Events() <-chan modem.Event { return b.events }

// List returns every modem known now, ordered by id.
func (b *Backend) List() []modem.Info {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]modem.Info, 0, len(b.modems))
	for _, e := range b.modems {
		if e.announced {
			out = append(out, e.info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Modems returns a handle for every modem known now, ordered by id.
func (b *Backend) Modems() []modem.Modem {
	infos := b.List()
	out := make([]modem.Modem, len(infos))
	for i, info := range infos {
		out[i] = &Modem{b: b, id: info.ID, last: info}
	}
	return out
}

// Get returns the modem with the given id. The handle follows the id, not
// ModemManager's object: after an unplug and replug it reaches the new
// object.
func (b *Backend) Get(id string) (modem.Modem, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.byIDLocked(id); e != nil {
		return &Modem{b: b, id: id, last: e.info}, true
	}
	return nil, false
}

func (b *Backend) byIDLocked(id string) *entry {
	for _, e := range b.modems {
		if e.announced && e.info.ID == id {
			return e
		}
	}
	return nil
}

// dial connects to the configured bus and subscribes to ModemManager's
// signals, in order (a sequential handler: a PropertiesChanged must never
// overtake the InterfacesAdded before it).
func (b *Backend) dial(ctx context.Context) (*dbus.Conn, chan *dbus.Signal, error) {
	opt := dbus.WithSignalHandler(dbus.NewSequentialSignalHandler())
	var conn *dbus.Conn
	var err error
	switch addr := b.opts.BusAddress; addr {
	case "", "system":
		conn, err = dbus.SystemBusPrivate(opt)
	case "session":
		conn, err = dbus.SessionBusPrivateNoAutoStartup(opt)
	default:
		conn, err = dbus.Dial(addr, opt)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("modemmanager: dial bus %q: %w", b.busName(), err)
	}
	if err := b.handshake(ctx, conn); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("modemmanager: bus %q: %w", b.busName(), err)
	}
	matches := [][]dbus.MatchOption{
		{dbus.WithMatchSender(busService), dbus.WithMatchInterface(busService),
			dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, mmService)},
		{dbus.WithMatchSender(mmService), dbus.WithMatchInterface(ifObjMgr),
			dbus.WithMatchObjectPath("/org/freedesktop/ModemManager1")},
		{dbus.WithMatchSender(mmService), dbus.WithMatchInterface(ifProps),
			dbus.WithMatchMember("PropertiesChanged"), dbus.WithMatchPathNamespace("/org/freedesktop/ModemManager1")},
	}
	for _, m := range matches {
		if err := conn.AddMatchSignalContext(ctx, m...); err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("modemmanager: subscribe on bus %q: %w", b.busName(), err)
		}
	}
	sigs := make(chan *dbus.Signal, 64)
	conn.Signal(sigs)
	return conn, sigs, nil
}

// handshake authenticates and says Hello, bounded by ctx: godbus's own
// handshake has no deadline, and a wedged bus must not hang the agent.
func (b *Backend) handshake(ctx context.Context, conn *dbus.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		if err := conn.Auth(nil); err != nil {
			done <- fmt.Errorf("auth: %w", err)
			return
		}
		done <- conn.Hello()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		conn.Close()
		<-done
		return ctx.Err()
	}
}

func (b *Backend) busName() string {
	if b.opts.BusAddress == "" {
		return "system"
	}
	return b.opts.BusAddress
}

// run is the loop: it owns every write to the modem tables. When the bus
// connection itself dies it forgets every modem and reconnects with backoff.
func (b *Backend) run(conn *dbus.Conn, sigs chan *dbus.Signal) {
	defer close(b.done)
	defer close(b.events)
	backoff := 500 * time.Millisecond
	for {
		b.serve(conn, sigs)
		conn.Close()
		if b.ctx.Err() != nil {
			return // Close: the modems are still there, only we stop looking
		}
		b.dropAll("bus connection closed")
		for {
			b.log.Warn("modemmanager: bus connection lost; reconnecting", "bus", b.busName(), "in", backoff)
			select {
			case <-b.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
			var err error
			conn, sigs, err = b.dial(b.ctx)
			if err == nil {
				break
			}
			b.log.Warn("modemmanager: reconnect failed", "err", err)
		}
		backoff = 500 * time.Millisecond
		b.mu.Lock()
		b.conn = conn
		b.mu.Unlock()
		b.resync(b.ctx, conn)
	}
}

func (b *Backend) serve(conn *dbus.Conn, sigs chan *dbus.Signal) {
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-conn.Context().Done():
			return
		case s, ok := <-sigs:
			if !ok {
				return
			}
			b.handle(conn, s)
		}
	}
}

// handle applies one signal. Signals are external input: a body of the wrong
// shape is ignored with a log line.
func (b *Backend) handle(conn *dbus.Conn, s *dbus.Signal) {
	b.log.Debug("signal", "name", s.Name, "sender", s.Sender, "path", s.Path, "seq", s.Sequence, "owner", b.owner, "syncseq", b.syncSeq)
	switch s.Name {
	case busService + ".NameOwnerChanged":
		var name, old, cur string
		if s.Sender != busService || dbus.Store(s.Body, &name, &old, &cur) != nil || name != mmService {
			return
		}
		if old != "" {
			b.dropAll("ModemManager left the bus")
		}
		if cur != "" {
			b.log.Info("modemmanager: daemon appeared; resyncing", "owner", cur)
			b.resync(b.ctx, conn)
		}
		return
	}
	if b.owner == "" || s.Sender != b.owner {
		return // a previous daemon's last words, or not ModemManager at all
	}
	switch s.Name {
	case ifObjMgr + ".InterfacesAdded":
		var path dbus.ObjectPath
		var ifaces map[string]map[string]dbus.Variant
		if s.Sequence < b.syncSeq || dbus.Store(s.Body, &path, &ifaces) != nil {
			return
		}
		b.interfacesAdded(conn, path, ifaces, s.Sequence)
	case ifObjMgr + ".InterfacesRemoved":
		var path dbus.ObjectPath
		var ifaces []string
		if s.Sequence < b.syncSeq || dbus.Store(s.Body, &path, &ifaces) != nil {
			return
		}
		b.interfacesRemoved(path, ifaces)
	case ifProps + ".PropertiesChanged":
		var iface string
		var changed map[string]dbus.Variant
		var invalidated []string
		if dbus.Store(s.Body, &iface, &changed, &invalidated) != nil {
			return
		}
		b.propertiesChanged(conn, s.Path, iface, changed, invalidated, s.Sequence)
	}
}

// resync replaces the whole picture with ModemManager's: run at start, when
// the daemon (re)appears and after a bus reconnect.
func (b *Backend) resync(ctx context.Context, conn *dbus.Conn) {
	b.resyncs.Add(1)
	owner, err := b.nameOwner(ctx, conn)
	if err != nil || owner == "" {
		if err != nil {
			b.log.Warn("modemmanager: cannot ask who owns the name", "err", err)
		}
		b.dropAll("ModemManager not running")
		return
	}
	var objs map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	var seq dbus.Sequence
	// ModemManager may have taken its name a moment before its object
	// manager answers; a few bounded tries cover that.
	for try, wait := 0, 100*time.Millisecond; ; try, wait = try+1, wait*4 {
		cctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
		call := conn.Object(mmService, "/org/freedesktop/ModemManager1").CallWithContext(cctx,
			ifObjMgr+".GetManagedObjects", dbus.FlagNoAutoStart)
		cancel()
		if err = call.Store(&objs); err == nil {
			seq = call.ResponseSequence
			break
		}
		if try == 3 || ctx.Err() != nil {
			b.log.Warn("modemmanager: cannot read modems", "err", err)
			b.dropAll("ModemManager does not answer")
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	if owner != b.owner {
		b.dropAll("ModemManager restarted")
	}
	b.mu.Lock()
	b.owner, b.syncSeq = owner, seq
	b.mu.Unlock()
	clear(b.pending)
	for path := range b.modems {
		if _, ok := objs[path][ifModem]; !ok {
			b.removeModem(path)
		}
	}
	paths := make([]dbus.ObjectPath, 0, len(objs))
	for path := range objs {
		paths = append(paths, path)
	}
	sort.Slice(paths, func(i, j int) bool { return paths[i] < paths[j] })
	for _, path := range paths {
		if _, ok := objs[path][ifModem]; !ok {
			// GDBus keeps an object whose interfaces are all gone.
			if len(objs[path]) > 0 {
				b.stash(path, objs[path])
			}
			continue
		}
		b.setModem(conn, path, objs[path], seq, true)
	}
}

func (b *Backend) nameOwner(ctx context.Context, conn *dbus.Conn) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
	defer cancel()
	var owner string
	err := conn.BusObject().CallWithContext(ctx, busService+".GetNameOwner", 0, mmService).Store(&owner)
	var de dbus.Error
	if errors.As(err, &de) && de.Name == "org.freedesktop.DBus.Error.NameHasNoOwner" {
		return "", nil
	}
	return owner, err
}

func (b *Backend) interfacesAdded(conn *dbus.Conn, path dbus.ObjectPath, ifaces map[string]map[string]dbus.Variant, seq dbus.Sequence) {
	if b.modems[path] == nil {
		if _, ok := ifaces[ifModem]; !ok {
			b.stash(path, ifaces)
			return
		}
		for iface, p := range b.pending[path] {
			if _, ok := ifaces[iface]; !ok {
				ifaces[iface] = p
			}
		}
		delete(b.pending, path)
	}
	b.setModem(conn, path, ifaces, seq, false)
}

// stash keeps the interfaces of an object that is not a modem (yet).
func (b *Backend) stash(path dbus.ObjectPath, ifaces map[string]map[string]dbus.Variant) {
	p := b.pending[path]
	if p == nil {
		if len(b.pending) >= maxPending {
			return
		}
		p = map[string]props{}
		b.pending[path] = p
	}
	for iface, v := range ifaces {
		p[iface] = props(v)
	}
}

func (b *Backend) interfacesRemoved(path dbus.ObjectPath, ifaces []string) {
	e := b.modems[path]
	if e == nil {
		for _, iface := range ifaces {
			delete(b.pending[path], iface)
		}
		if len(b.pending[path]) == 0 {
			delete(b.pending, path)
		}
		return
	}
	for _, iface := range ifaces {
		if iface == ifModem {
			b.removeModem(path)
			return
		}
	}
	b.mu.Lock()
	for _, iface := range ifaces {
		delete(e.ifaces, iface)
	}
	b.mu.Unlock()
	b.refresh(nil, e)
}

// setModem records a Modem object's interfaces (all of them when replace)
// and announces the result.
func (b *Backend) setModem(conn *dbus.Conn, path dbus.ObjectPath, ifaces map[string]map[string]dbus.Variant, seq dbus.Sequence, replace bool) {
	e := b.modems[path]
	b.mu.Lock()
	if e == nil {
		e = &entry{path: path, ifaces: map[string]props{}}
		e.ctx, e.cancel = context.WithCancelCause(b.ctx)
		b.modems[path] = e
	}
	if replace {
		e.ifaces = map[string]props{}
	}
	for iface, p := range ifaces {
		e.ifaces[iface] = props(p)
	}
	if seq > e.seq {
		e.seq = seq
	}
	b.mu.Unlock()
	b.refresh(conn, e)
}

func (b *Backend) removeModem(path dbus.ObjectPath) {
	e := b.modems[path]
	if e == nil {
		return
	}
	b.mu.Lock()
	delete(b.modems, path)
	for bearer, m := range b.owned {
		if m == path {
			delete(b.owned, bearer)
		}
	}
	b.mu.Unlock()
	e.cancel(modem.ErrGone)
	if e.announced {
		b.log.Info("modemmanager: modem removed", "id", e.info.ID, "path", path)
		b.emit(modem.Event{Kind: modem.Removed, Info: e.info})
	}
	b.collect()
}

// dropAll forgets every modem: the daemon or the bus went away, so nothing
// it exported exists any more.
func (b *Backend) dropAll(why string) {
	if len(b.modems) > 0 {
		b.log.Info("modemmanager: dropping every modem", "why", why, "count", len(b.modems))
	}
	paths := make([]dbus.ObjectPath, 0, len(b.modems))
	for p := range b.modems {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return paths[i] < paths[j] })
	for _, p := range paths {
		b.removeModem(p)
	}
	b.mu.Lock()
	b.owner = ""
	b.sims = map[dbus.ObjectPath]*remote{}
	b.bearers = map[dbus.ObjectPath]*remote{}
	b.owned = map[dbus.ObjectPath]dbus.ObjectPath{}
	b.mu.Unlock()
	clear(b.pending)
}

func (b *Backend) propertiesChanged(conn *dbus.Conn, path dbus.ObjectPath, iface string, changed map[string]dbus.Variant, invalidated []string, seq dbus.Sequence) {
	if len(invalidated) > 0 {
		// ModemManager sends values, not invalidations; should one come,
		// read the interface again rather than show a stale value.
		fresh, s, err := b.getAll(b.ctx, conn, path, iface)
		if err != nil {
			b.log.Debug("modemmanager: re-read after invalidation failed", "path", path, "err", err)
			return
		}
		changed, seq = fresh, s
	}
	if e := b.modems[path]; e != nil {
		if seq < e.seq {
			return
		}
		b.mu.Lock()
		e.ifaces[iface] = e.ifaces[iface].merge(changed)
		b.mu.Unlock()
		b.refresh(conn, e)
		return
	}
	var r *remote
	switch iface {
	case ifSim:
		r = b.sims[path]
	case ifBearer:
		r = b.bearers[path]
	}
	if r == nil || seq < r.seq {
		return
	}
	b.mu.Lock()
	r.props = r.props.merge(changed)
	b.mu.Unlock()
	for _, e := range b.modems {
		if b.refersTo(e, path) {
			b.refresh(conn, e)
		}
	}
}

func (b *Backend) refersTo(e *entry, path dbus.ObjectPath) bool {
	m := e.ifaces[ifModem]
	if m.path("Sim") == path {
		return true
	}
	for _, p := range m.paths("Bearers") {
		if p == path {
			return true
		}
	}
	return false
}

// refresh loads the SIM and bearers a modem refers to (conn nil: only those
// already loaded), recomputes its Info and announces a difference.
func (b *Backend) refresh(conn *dbus.Conn, e *entry) {
	m := e.ifaces[ifModem]
	if conn != nil {
		want := m.paths("Bearers")
		if sim := m.path("Sim"); sim != "" {
			b.load(conn, sim, ifSim, b.sims)
		}
		for _, p := range want {
			b.load(conn, p, ifBearer, b.bearers)
		}
	}
	var sim props
	if r := b.sims[m.path("Sim")]; r != nil {
		sim = r.props
	}
	var bearers []bearerView
	b.mu.Lock()
	for _, p := range m.paths("Bearers") {
		if r := b.bearers[p]; r != nil {
			bearers = append(bearers, bearerView{props: r.props, ours: b.owned[p] == e.path})
		}
	}
	b.mu.Unlock()
	info := buildInfo(e.ifaces, sim, bearers)
	if info.ID == "" {
		return // not identifiable yet; ModemManager will tell more
	}
	old, announced := e.info, e.announced
	b.mu.Lock()
	e.info, e.announced = info, true
	b.mu.Unlock()
	switch {
	case !announced:
		b.log.Info("modemmanager: modem added", "id", info.ID, "path", e.path, "state", info.State)
		b.emit(modem.Event{Kind: modem.Added, Info: info})
	case old.ID != info.ID:
		b.emit(modem.Event{Kind: modem.Removed, Info: old})
		b.emit(modem.Event{Kind: modem.Added, Info: info})
	case !reflect.DeepEqual(old, info):
		b.emit(modem.Event{Kind: modem.Changed, Info: info})
	}
	b.collect()
	if b.opts.EnableModems && m.i32("State") == stateDisabled && !e.enabling && conn != nil {
		e.enabling = true
		go b.enableAsync(conn, e)
	}
}

func (b *Backend) enableAsync(conn *dbus.Conn, e *entry) {
	ctx, cancel := context.WithTimeout(e.ctx, b.opts.ConnectTimeout)
	defer cancel()
	err := conn.Object(mmService, e.path).CallWithContext(ctx, ifModem+".Enable", dbus.FlagNoAutoStart, true).Err
	if err != nil && e.ctx.Err() == nil {
		b.log.Warn("modemmanager: enable failed", "path", e.path, "err", err)
	}
}

// load reads a SIM or Bearer object once; PropertiesChanged keeps it fresh.
func (b *Backend) load(conn *dbus.Conn, path dbus.ObjectPath, iface string, into map[dbus.ObjectPath]*remote) {
	if into[path] != nil {
		return
	}
	p, seq, err := b.getAll(b.ctx, conn, path, iface)
	if err != nil {
		b.log.Debug("modemmanager: cannot read object", "path", path, "err", err)
		return
	}
	b.mu.Lock()
	into[path] = &remote{props: p, seq: seq}
	b.mu.Unlock()
}

// collect forgets SIM and Bearer objects no modem refers to.
func (b *Backend) collect() {
	keep := map[dbus.ObjectPath]bool{}
	for _, e := range b.modems {
		m := e.ifaces[ifModem]
		keep[m.path("Sim")] = true
		for _, p := range m.paths("Bearers") {
			keep[p] = true
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for p := range b.sims {
		if !keep[p] {
			delete(b.sims, p)
		}
	}
	for p := range b.bearers {
		if !keep[p] {
			delete(b.bearers, p)
		}
	}
}

func (b *Backend) getAll(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath, iface string) (props, dbus.Sequence, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.CallTimeout)
	defer cancel()
	var p map[string]dbus.Variant
	call := conn.Object(mmService, path).CallWithContext(ctx, ifProps+".GetAll", dbus.FlagNoAutoStart, iface)
	if err := call.Store(&p); err != nil {
		return nil, 0, fmt.Errorf("read %s %s: %w", path, iface, err)
	}
	return props(p), call.ResponseSequence, nil
}

// emit never blocks the loop: a full channel loses its oldest event.
func (b *Backend) emit(ev modem.Event) {
	for {
		select {
		case b.events <- ev:
			return
		default:
		}
		select {
		case <-b.events:
			b.dropped++
			if b.dropped == 1 || b.dropped%100 == 0 {
				b.log.Warn("modemmanager: event reader too slow; dropped oldest events", "dropped", b.dropped)
			}
		default:
		}
	}
}
