package at

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simproof/simproof/modem"
)

// PortConfig is one modem's AT port.
type PortConfig struct {
	Device    string
	Baud      int
	Profile   string // auto or a profile name
	NetDevice string
	PINFile   string
	Simulated bool // the built-in simulator: shown as simulated in the API
}

// BackendOptions configure the AT backend. Zero values work.
type BackendOptions struct {
	Ports          []PortConfig
	CommandTimeout time.Duration // per command; 10s if zero
	RefreshEvery   time.Duration // signal/registration re-read; 1m if zero
	Log            *slog.Logger
	Trace          bool // log every AT line at debug level
	// Open opens a port; nil means go.bug.st/serial (see OpenSerial).
	Open func(device string, baud int) (io.ReadWriteCloser, error)
	// MinBackoff and MaxBackoff bound the wait between reopen attempts.
	MinBackoff, MaxBackoff time.Duration
	// PIN returns the SIM PIN for a port whose SIM asks for one ("" = none
	// configured). The daemon reads it from the port's pin_file.
	PIN func(PortConfig) (string, error)
}

// Backend drives modems over AT ports: it opens each port, reads identity and
// state, follows unsolicited codes, and when a port dies (unplug, EOF) removes
// the modem and reopens the port with backoff, without a daemon restart.
type Backend struct {
	opts   BackendOptions
	log    *slog.Logger
	events chan modem.Event

	mu         sync.Mutex
	pinRefused map[string]bool          // by device: the SIM refused it
	modems     map[string]*Modem        // by id, while the port is open
	status     map[string]string        // by device: "" ok, else the last error
	stats      map[string]*portCounters // by device, across reopens
}

// PortStats are one port's counters since the backend started, across
// reopens (for metrics).
type PortStats struct {
	Device       string
	Commands     uint64 // commands sent
	Errors       uint64 // final result codes other than OK/CONNECT
	Timeouts     uint64 // commands with no final result code in time
	GarbageBytes uint64 // line noise skipped
	Opens        uint64 // successful opens of the port
}

type portCounters struct {
	commands, errors, timeouts, garbage, opens atomic.Uint64
}

// PortStats returns every configured port's counters, in configuration order.
func (b *Backend) PortStats() []PortStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	live := map[string]uint64{} // noise on open ports, not yet folded into the counters
	for _, m := range b.modems {
		live[m.port.Device] += m.eng.Stats().GarbageBytes
	}
	var out []PortStats
	for _, p := range b.opts.Ports {
		c := b.counters(p.Device)
		out = append(out, PortStats{Device: p.Device, Commands: c.commands.Load(), Errors: c.errors.Load(),
			Timeouts: c.timeouts.Load(), GarbageBytes: c.garbage.Load() + live[p.Device], Opens: c.opens.Load()})
	}
	return out
}

// counters returns the port's counters; b.mu must be held.
func (b *Backend) counters(dev string) *portCounters {
	c, ok := b.stats[dev]
	if !ok {
		c = &portCounters{}
		b.stats[dev] = c
	}
	return c
}

// NewBackend returns a backend for opts.Ports; Run starts it.
func NewBackend(opts BackendOptions) *Backend {
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = 10 * time.Second
	}
	if opts.RefreshEvery <= 0 {
		opts.RefreshEvery = time.Minute
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 15 * time.Second
	}
	if opts.Open == nil {
		opts.Open = OpenSerial
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Backend{opts: opts, log: opts.Log.With("backend", "at"), events: make(chan modem.Event, 64),
		modems: map[string]*Modem{}, status: map[string]string{}, stats: map[string]*portCounters{}, pinRefused: map[string]bool{}}
}

// Events delivers modem.added/changed/removed; it closes when Run returns.
func (b *Backend) Events() <-chan modem.Event { return b.events }

// Get returns the modem with id while its port is open.
func (b *Backend) Get(id string) (modem.Modem, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, ok := b.modems[id]
	if !ok {
		return nil, false
	}
	return m, true
}

// Status reports "running", or "degraded" with the ports' last errors.
func (b *Backend) Status() (string, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []string
	for dev, e := range b.status {
		if e != "" {
			errs = append(errs, dev+": "+e)
		}
	}
	if len(errs) > 0 {
		return "degraded", strings.Join(errs, "; ")
	}
	return "running", ""
}

// Run serves every port until ctx ends.
func (b *Backend) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range b.opts.Ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.portLoop(ctx, p)
		}()
	}
	wg.Wait()
	close(b.events)
}

func (b *Backend) setStatus(dev string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.status[dev] = ""
	} else {
		b.status[dev] = err.Error()
	}
}

func (b *Backend) emit(ctx context.Context, kind modem.EventKind, info modem.Info) {
	select {
	case b.events <- modem.Event{Kind: kind, Info: info}:
	case <-ctx.Done():
	}
}

// portLoop opens the port, serves the modem until the port dies, and
// reopens it with exponential backoff (reset after a session that worked).
func (b *Backend) portLoop(ctx context.Context, p PortConfig) {
	backoff := b.opts.MinBackoff
	log := b.log.With("port", p.Device)
	for ctx.Err() == nil {
		served, err := b.session(ctx, p, log)
		if ctx.Err() != nil {
			return
		}
		b.setStatus(p.Device, err)
		if served {
			backoff = b.opts.MinBackoff
		}
		log.Warn("AT port unavailable; will reopen", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, b.opts.MaxBackoff)
	}
}

// session runs one open port: identify, register, follow. served says
// whether the modem got as far as being listed.
func (b *Backend) session(ctx context.Context, p PortConfig, log *slog.Logger) (served bool, err error) {
	if err := checkPortFree(p.Device); err != nil {
		return false, err
	}
	rw, err := b.opts.Open(p.Device, p.Baud)
	if err != nil {
		return false, fmt.Errorf("open %s: %w", p.Device, err)
	}
	var trace func(byte, string)
	if b.opts.Trace {
		trace = func(dir byte, line string) { log.Debug("at", "dir", string(dir), "line", line) }
	}
	eng := New(rw, Options{Timeout: b.opts.CommandTimeout, Trace: trace})
	b.mu.Lock()
	ctr := b.counters(p.Device)
	b.mu.Unlock()
	ctr.opens.Add(1)
	defer func() {
		eng.Close()
		rw.Close()
		ctr.garbage.Add(eng.Stats().GarbageBytes)
	}()
	b.mu.Lock()
	refused := b.pinRefused[p.Device]
	b.mu.Unlock()
	m := &Modem{b: b, port: p, eng: eng, regs: map[string]string{}, ctr: ctr, pinRefused: refused}
	if err := m.identify(ctx); err != nil {
		return false, fmt.Errorf("identify %s: %w", p.Device, err)
	}
	info := m.Info()
	b.mu.Lock()
	if old, dup := b.modems[info.ID]; dup && old != m {
		b.mu.Unlock()
		return false, fmt.Errorf("%s: modem %s is already served on %s", p.Device, info.ID, old.port.Device)
	}
	b.modems[info.ID] = m
	b.status[p.Device] = ""
	b.mu.Unlock()
	log.Info("modem ready", "id", info.ID, "model", info.Model, "state", info.State)
	b.emit(ctx, modem.Added, info)

	err = m.follow(ctx)

	b.mu.Lock()
	delete(b.modems, info.ID)
	b.mu.Unlock()
	m.markGone()
	b.emit(context.Background(), modem.Removed, m.Info())
	return true, err
}

// Modem is one modem on an AT port. It satisfies modem.Modem.
type Modem struct {
	b    *Backend
	port PortConfig
	eng  *Engine
	ctr  *portCounters

	// ops serialises multi-command sequences (identify, refresh, connect) so
	// their answers do not interleave with another sequence's.
	ops sync.Mutex

	mu   sync.Mutex // guards the fields below
	info modem.Info
	regs map[string]string // domain (CREG, CGREG, CEREG) → registration
	act  string            // access technology from the newest source
	gone bool
	// pinRefused: the SIM refused the configured PIN (reported, never retried).
	pinRefused bool
}

// Info returns the modem object.
func (m *Modem) Info() modem.Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	info := m.info
	info.SIM.OwnNumbers = append([]string(nil), info.SIM.OwnNumbers...)
	return info
}

func (m *Modem) markGone() {
	m.mu.Lock()
	m.gone = true
	m.info.State = "unknown"
	m.info.Data = modem.DataInfo{}
	m.mu.Unlock()
}

// cmd runs one command; a dead port becomes modem.ErrGone.
func (m *Modem) cmd(ctx context.Context, c string) ([]string, error) {
	return m.count(m.eng.Command(ctx, c))
}

// cmdTimeout runs a command that may take longer than the default timeout
// (activations on the network side).
func (m *Modem) cmdTimeout(ctx context.Context, c string, d time.Duration) ([]string, error) {
	return m.count(m.eng.CommandTimeout(ctx, c, d))
}

func (m *Modem) count(lines []string, err error) ([]string, error) {
	m.ctr.commands.Add(1)
	switch {
	case err == nil:
	case errors.Is(err, ErrClosed):
		return nil, fmt.Errorf("%s: %w: %v", m.port.Device, modem.ErrGone, err)
	case errors.Is(err, ErrTimeout):
		m.ctr.timeouts.Add(1)
	default:
		m.ctr.errors.Add(1)
	}
	return lines, err
}

// identify reads identity and state. Only a dead port or a modem that
// answers nothing is an error: a missing SIM or no registration is state.
func (m *Modem) identify(ctx context.Context) error {
	m.ops.Lock()
	defer m.ops.Unlock()
	// A modem may be mid-boot or have junk in its buffer: the first AT may
	// fail; try a few times before giving up on the port.
	var err error
	for i := 0; i < 3; i++ {
		if _, err = m.cmd(ctx, "AT"); err == nil || errors.Is(err, modem.ErrGone) {
			break
		}
	}
	if err != nil {
		return err
	}
	// Echo off and numeric CME errors make answers easier to read; a modem
	// that refuses them still works (the engine tolerates echo).
	_, _ = m.cmd(ctx, "ATE0")
	_, _ = m.cmd(ctx, "AT+CMEE=1")

	info := modem.Info{Backend: "at", Simulated: m.port.Simulated, Port: m.port.Device}
	get := func(c string, prefixes ...string) string {
		lines, err := m.cmd(ctx, c)
		if err != nil {
			return ""
		}
		return stripInfo(lines, prefixes...)
	}
	info.Manufacturer = get("AT+CGMI", "+CGMI:")
	info.Model = get("AT+CGMM", "+CGMM:")
	info.Revision = get("AT+CGMR", "+CGMR:", "Revision:")
	if lines, err := m.cmd(ctx, "AT+CGSN"); err == nil {
		info.IMEI = parseIMEI(lines)
	} else if errors.Is(err, modem.ErrGone) {
		return err
	}
	info.ID = info.IMEI
	if info.ID == "" {
		// No IMEI (some CDMA or odd modules): the port path is the most
		// stable thing left.
		info.ID = "at-" + strings.NewReplacer("/", "-", ":", "-").Replace(strings.TrimPrefix(m.port.Device, "/dev/"))
	}
	if err := m.readSIM(ctx, &info); err != nil {
		return err
	}
	if info.SIM.State == "pin-required" {
		if err := m.enterPIN(ctx, &info); err != nil {
			return err
		}
	}
	m.mu.Lock()
	m.info = info
	m.mu.Unlock()
	// Ask for registration URCs with location and technology. Modems that
	// lack one of the domains answer an error; that is fine.
	// +CGEREP=2 asks for +CGEV reports, so a network-side drop of the data
	// session is noticed at once rather than at the next refresh.
	for _, c := range []string{"AT+CREG=2", "AT+CGREG=2", "AT+CEREG=2", "AT+CGEREP=2,1"} {
		_, _ = m.cmd(ctx, c)
	}
	return m.refreshLocked(ctx)
}

// enterPIN unlocks the SIM with the configured PIN. A PIN the SIM refused
// is reported and never sent again for the daemon's lifetime, whatever the
// reopens, since each attempt counts towards the SIM's PUK lock; a PIN it
// accepted is sent again after the modem restarts (the SIM locks again).
// Only a dead port is an error.
func (m *Modem) enterPIN(ctx context.Context, info *modem.Info) error {
	m.mu.Lock()
	refused := m.pinRefused
	m.mu.Unlock()
	if m.b.opts.PIN == nil || refused {
		return nil
	}
	pin, err := m.b.opts.PIN(m.port)
	if err != nil {
		m.b.log.Error("SIM PIN not readable; the SIM stays locked", "port", m.port.Device, "err", err)
		return nil
	}
	if pin == "" {
		return nil
	}
	if !digitsOnly(pin) || len(pin) < 4 || len(pin) > 8 {
		m.b.log.Error("the SIM PIN in pin_file is not 4 to 8 digits; not sent", "port", m.port.Device)
		return nil
	}
	_, err = m.cmd(ctx, `AT+CPIN="`+pin+`"`)
	switch {
	case errors.Is(err, modem.ErrGone):
		return err
	case err != nil:
		// The engine redacts the PIN from the error.
		m.b.log.Error("the SIM refused the PIN from pin_file; not retrying", "port", m.port.Device, "err", err)
		m.b.mu.Lock()
		m.b.pinRefused[m.port.Device] = true
		m.b.mu.Unlock()
		m.mu.Lock()
		m.pinRefused = true
		m.mu.Unlock()
		return nil
	}
	m.b.log.Info("SIM unlocked with the PIN from pin_file", "port", m.port.Device)
	// The SIM needs a moment after the PIN before it answers reads.
	for i := 0; i < 20; i++ {
		if err := m.readSIM(ctx, info); err != nil {
			return err
		}
		if info.SIM.State != "pin-required" && info.SIM.ICCID != "" && (info.SIM.State != "ready" || info.SIM.IMSI != "") {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// readSIM fills SIM state, ICCID, IMSI, own numbers and the home operator.
func (m *Modem) readSIM(ctx context.Context, info *modem.Info) error {
	lines, err := m.cmd(ctx, "AT+CPIN?")
	var cme *CMEError
	switch {
	case errors.Is(err, modem.ErrGone):
		return err
	case errors.As(err, &cme) && (cme.Code == 10 || cme.Code == 13 || strings.Contains(strings.ToLower(cme.Text), "not inserted")):
		info.SIM.State = "missing"
	case err != nil:
		info.SIM.State = "unknown"
	default:
		info.SIM.State = simState(lines)
	}
	// The ICCID is readable without a PIN on most modems; try the vendor
	// spellings, then EF_ICCID through +CRSM.
	for _, c := range []string{"AT+CCID", "AT+QCCID", "AT+ICCID", "AT^ICCID"} {
		if info.SIM.State == "missing" {
			break
		}
		lines, err := m.cmd(ctx, c)
		if errors.Is(err, modem.ErrGone) {
			return err
		}
		if err == nil {
			if v := parseICCID(lines); v != "" {
				info.SIM.ICCID = v
				break
			}
		}
	}
	if info.SIM.ICCID == "" && info.SIM.State != "missing" {
		if lines, err := m.cmd(ctx, "AT+CRSM=176,12258,0,0,10"); err == nil {
			if sw1, _, data, ok := parseCRSM(lines); ok && (sw1 == 0x90 || sw1 == 0x91) {
				if v := swapNibbles(data); digitsOnly(v) {
					info.SIM.ICCID = v
				}
			}
		} else if errors.Is(err, modem.ErrGone) {
			return err
		}
	}
	if info.SIM.State != "ready" {
		return nil
	}
	if lines, err := m.cmd(ctx, "AT+CIMI"); err == nil {
		if v := stripInfo(lines, "+CIMI:"); digitsOnly(v) {
			info.SIM.IMSI = v
		}
	} else if errors.Is(err, modem.ErrGone) {
		return err
	}
	mncLen := 0
	if lines, err := m.cmd(ctx, "AT+CRSM=176,28589,0,0,4"); err == nil {
		if sw1, _, data, ok := parseCRSM(lines); ok && sw1 == 0x90 {
			mncLen = parseEFAD(data)
		}
	}
	info.SIM.OperatorID = homeOperator(info.SIM.IMSI, mncLen)
	if lines, err := m.cmd(ctx, "AT+CRSM=176,28486,0,0,17"); err == nil {
		if sw1, _, data, ok := parseCRSM(lines); ok && sw1 == 0x90 {
			info.SIM.OperatorName = parseSPN(data)
		}
	}
	if lines, err := m.cmd(ctx, "AT+CNUM"); err == nil {
		info.SIM.OwnNumbers = parseCNUM(lines)
	} else if errors.Is(err, modem.ErrGone) {
		return err
	}
	if info.SIM.OwnNumbers == nil {
		info.SIM.OwnNumbers = []string{}
	}
	return nil
}

// refresh re-reads signal, registration and operator.
func (m *Modem) refresh(ctx context.Context) error {
	m.ops.Lock()
	defer m.ops.Unlock()
	return m.refreshLocked(ctx)
}

func (m *Modem) refreshLocked(ctx context.Context) error {
	var sig *int
	if lines, err := m.cmd(ctx, "AT+CSQ"); err == nil {
		sig = signalQuality(lines)
	} else if errors.Is(err, modem.ErrGone) {
		return err
	}
	regs := map[string]string{}
	acts := map[string]string{}
	for _, d := range []string{"CREG", "CGREG", "CEREG"} {
		lines, err := m.cmd(ctx, "AT+"+d+"?")
		if errors.Is(err, modem.ErrGone) {
			return err
		}
		if v := firstLine(lines, "+"+d+":"); err == nil && v != "" {
			if stat, act, ok := parseReg(v, "", false); ok {
				regs[d], acts[d] = stat, act
			}
		}
	}
	var netID, netName, copsAct string
	if _, err := m.cmd(ctx, "AT+COPS=3,2"); err == nil {
		if lines, err := m.cmd(ctx, "AT+COPS?"); err == nil {
			if f, op, act, ok := parseCOPS(lines); ok && f == 2 {
				netID, copsAct = op, act
			}
		}
	}
	if _, err := m.cmd(ctx, "AT+COPS=3,0"); err == nil {
		if lines, err := m.cmd(ctx, "AT+COPS?"); err == nil {
			if f, op, act, ok := parseCOPS(lines); ok && f == 0 {
				netName = op
				if copsAct == "" {
					copsAct = act
				}
			}
		}
	}
	m.mu.Lock()
	m.regs = regs
	m.act = copsAct
	for _, d := range []string{"CEREG", "CGREG", "CREG"} {
		if m.act == "" && acts[d] != "" {
			m.act = acts[d]
		}
	}
	m.info.SignalQuality = sig
	m.info.Network = modem.Network{OperatorID: netID, OperatorName: netName}
	m.recomputeLocked()
	m.mu.Unlock()
	return nil
}

// recomputeLocked derives registration and state from what is known.
func (m *Modem) recomputeLocked() {
	best := ""
	for _, r := range m.regs {
		if registrationRank[r] > registrationRank[best] {
			best = r
		}
	}
	m.info.Registration = best
	if best == "" {
		m.info.Registration = "unknown"
	}
	m.info.AccessTechnology = m.act
	if m.info.AccessTechnology == "" || registrationRank[best] < registrationRank["emergency-only"] {
		m.info.AccessTechnology = "unknown"
	}
	m.info.StateReason = ""
	switch sim := m.info.SIM.State; {
	case sim == "missing":
		m.info.State, m.info.StateReason = "failed", "sim-missing"
	case sim == "pin-required" && m.pinRefused:
		m.info.State, m.info.StateReason = "locked", "sim-pin-refused"
	case sim == "pin-required":
		m.info.State, m.info.StateReason = "locked", "sim-pin"
	case sim == "puk-required":
		m.info.State, m.info.StateReason = "locked", "sim-puk"
	case sim != "ready":
		m.info.State, m.info.StateReason = "failed", "sim-"+sim
	case m.info.Data.Connected:
		m.info.State = "connected"
	case registrationRank[best] >= registrationRank["home-sms-only"]:
		m.info.State = "registered"
	case best == "searching":
		m.info.State = "searching"
	default:
		m.info.State = "enabled"
		if best == "denied" {
			m.info.StateReason = "registration-denied"
		}
	}
}

// follow keeps the modem object current until the port dies or ctx ends.
func (m *Modem) follow(ctx context.Context) error {
	urcs, cancel := m.eng.Subscribe("+CREG:", "+CGREG:", "+CEREG:", "+CGEV:", "+CPIN:")
	defer cancel()
	tick := time.NewTicker(m.b.opts.RefreshEvery)
	defer tick.Stop()
	for {
		before := m.Info()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.eng.Done():
			return fmt.Errorf("%s: %w", m.port.Device, m.eng.Err())
		case u := <-urcs:
			m.handleURC(ctx, u.Line)
		case <-tick.C:
			if err := m.refresh(ctx); errors.Is(err, modem.ErrGone) {
				return err
			}
		}
		if after := m.Info(); !reflect.DeepEqual(before, after) {
			m.b.emit(ctx, modem.Changed, after)
		}
	}
}

func (m *Modem) handleURC(ctx context.Context, line string) {
	up := strings.ToUpper(line)
	for _, d := range []string{"CREG", "CGREG", "CEREG"} {
		if strings.HasPrefix(up, "+"+d+":") {
			if stat, act, ok := parseReg(line, "+"+d+":", true); ok {
				m.mu.Lock()
				m.regs[d] = stat
				if act != "" {
					m.act = act
				}
				m.recomputeLocked()
				m.mu.Unlock()
			}
			return
		}
	}
	switch {
	case strings.HasPrefix(up, "+CGEV:") && (strings.Contains(up, "DEACT") || strings.Contains(up, "DETACH")):
		m.dataLost(ctx, line)
	case strings.HasPrefix(up, "+CPIN:"):
		// The SIM changed state (inserted, removed, unlocked): read it again.
		go func() {
			m.ops.Lock()
			defer m.ops.Unlock()
			info := m.Info()
			if err := m.readSIM(ctx, &info); err == nil {
				m.mu.Lock()
				m.info.SIM = info.SIM
				m.recomputeLocked()
				m.mu.Unlock()
				m.b.emit(ctx, modem.Changed, m.Info())
			}
		}()
	}
}
