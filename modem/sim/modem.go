package sim

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// RegStat is a 27.007 registration <stat>.
type RegStat int

const (
	RegIdle      RegStat = 0 // not registered, not searching
	RegHome      RegStat = 1
	RegSearching RegStat = 2
	RegDenied    RegStat = 3
	RegUnknown   RegStat = 4
	RegRoaming   RegStat = 5
)

func (r RegStat) registered() bool { return r == RegHome || r == RegRoaming }

// Faults are runtime knobs that make the modem misbehave the way real ones
// do. The zero value is a healthy modem.
type Faults struct {
	NoSIM         bool // +CPIN? and every SIM read: +CME ERROR: 10; not registered
	PINRequired   bool // +CPIN: SIM PIN; IMSI/MSISDN reads +CME ERROR: 11 until AT+CPIN="<pin>"
	PUKRequired   bool // +CPIN: SIM PUK; +CME ERROR: 12 until AT+CPIN="<puk>","<new pin>"
	NotRegistered bool // registration <stat> 2 (searching); activation +CME ERROR: 30
	Denied        bool // registration <stat> 3 (denied); activation +CME ERROR: 30

	Delay        time.Duration // before each answer (the echo comes at once)
	Silent       bool          // no echo, no answer, the command is not run (URCs still flow)
	GarbageEvery int           // every Nth answer starts with Garbage
}

// Garbage is what the GarbageEvery fault puts in front of an answer: line
// noise without a line ending, so it joins the answer's first line break.
const Garbage = "\x00\xff\xfe\x1b~#"

// PDPContext is one context as the modem holds it.
type PDPContext struct {
	CID    int
	Type   string // IP, IPV6, IPV4V6
	APN    string
	Active bool
}

// state is the modem's side of everything, shared by every port.
type state struct {
	id       Identity
	faults   Faults
	reg      RegStat // what SetRegistration said; faults and CFUN override it
	copsMode int     // +COPS <mode>; 2 deregisters
	cfun     int
	attached bool
	pinTries int
	bearer   BearerConfig
	ctxs     map[int]*pdpContext
	disabled map[string]bool
	answers  int // counts answers for GarbageEvery
}

type pdpContext struct {
	cid        int
	typ, apn   string
	active     bool
	auth       int
	user, pass string
}

func (st *state) regStat() RegStat {
	switch {
	case st.faults.NoSIM, st.faults.PINRequired, st.faults.PUKRequired, st.cfun != 1, st.copsMode == 2:
		return RegIdle
	case st.faults.Denied:
		return RegDenied
	case st.faults.NotRegistered:
		return RegSearching
	}
	return st.reg
}

// simErr is the error a command needing the unlocked SIM gets.
func (st *state) simErr() error {
	switch {
	case st.faults.NoSIM:
		return errSIMNotInserted
	case st.faults.PUKRequired:
		return errSIMPUK
	case st.faults.PINRequired:
		return errSIMPIN
	}
	return nil
}

func (st *state) rssi() int {
	if st.cfun != 1 || st.id.RSSI < 0 || st.id.RSSI > 31 {
		return 99
	}
	return st.id.RSSI
}

// bars maps +CSQ to the 0..5 "signal" indicator of +CIND.
func (st *state) bars() int {
	r := st.rssi()
	switch {
	case r == 99 || r == 0:
		return 0
	case r >= 25:
		return 5
	case r >= 20:
		return 4
	case r >= 15:
		return 3
	case r >= 10:
		return 2
	}
	return 1
}

// Modem is one simulated modem. Every method is safe for concurrent use.
type Modem struct {
	life       sync.Mutex // serialises transports, Plug, Unplug and Close; never taken by a session
	transports []transport
	plugged    bool
	closed     bool

	mu       sync.Mutex // guards what follows; command handlers run with it held
	st       state
	table    map[string]handler
	sessions map[*session]struct{}
	cur      *session // the session whose command is running, if any
	curURC   []byte   // URCs for cur, sent after its answer
}

// New returns a modem with identity id, DefaultBearer(0), one PDP context
// (1, "IP", "internet"), registered at home, and no transport yet.
func New(id Identity) *Modem {
	m := &Modem{
		plugged:  true,
		table:    make(map[string]handler),
		sessions: make(map[*session]struct{}),
	}
	m.st = state{
		id:       id,
		reg:      RegHome,
		bearer:   DefaultBearer(0),
		disabled: map[string]bool{"+QCCID": true, "+ICCID": true, "^ICCID": true},
	}
	m.st.powerOn()
	m.addCommands(v250Commands())
	m.addCommands(generic3GPPCommands())
	m.addCommands(generic3GPPDataCommands())
	return m
}

// powerOn is the state after power-up: the radio on, attached, the default
// context defined and inactive.
func (st *state) powerOn() {
	st.cfun = 1
	st.copsMode = 0
	st.attached = true
	st.pinTries = 3
	st.ctxs = map[int]*pdpContext{1: {cid: 1, typ: "IP", apn: "internet"}}
}

// addCommands merges a command table (vendor dialogues add theirs).
func (m *Modem) addCommands(t map[string]handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, h := range t {
		m.table[strings.ToUpper(k)] = h
	}
}

// Enable makes commands answer again (by name as sent, e.g. "+QCCID",
// "^ICCID"). +QCCID, +ICCID and ^ICCID are disabled at first: a new modem
// knows only +CCID for its ICCID.
func (m *Modem) Enable(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		delete(m.st.disabled, strings.ToUpper(n))
	}
}

// Disable makes commands answer +CME ERROR: 4 as if the modem lacked them.
func (m *Modem) Disable(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		m.st.disabled[strings.ToUpper(n)] = true
	}
}

// change runs fn on the state and tells every port what changed the way
// the port asked to be told (+CREG/+CGREG/+CEREG, +CIEV), and drops the data
// sessions a powered-down radio or an unusable SIM cannot keep.
func (m *Modem) change(fn func(st *state)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.changeLocked(fn)
}

func (m *Modem) changeLocked(fn func(st *state)) {
	st := &m.st
	reg, bars := st.regStat(), st.bars()
	fn(st)
	if st.cfun != 1 || st.simErr() != nil {
		for _, c := range st.sortedContexts() {
			if c.active {
				m.deactivate(c)
			}
		}
		st.attached = st.attached && st.cfun == 1
	}
	if r := st.regStat(); r != reg {
		m.broadcast(func(s *session) string { return s.regURCs(st) })
	}
	if b := st.bars(); b != bars {
		m.broadcast(func(s *session) string {
			if s.cfg.cmerMode == 3 && s.cfg.cmerInd > 0 {
				return fmt.Sprintf("+CIEV: 2,%d", b)
			}
			return ""
		})
	}
}

// SetFaults replaces every fault knob.
func (m *Modem) SetFaults(f Faults) {
	m.change(func(st *state) {
		st.faults = f
		if !f.PINRequired && !f.PUKRequired {
			st.pinTries = 3
		}
	})
}

// Faults returns the knobs as they are now (AT+CPIN clears PINRequired).
func (m *Modem) Faults() Faults {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.faults
}

// SetIdentity replaces the identity (RSSI and AcT included).
func (m *Modem) SetIdentity(id Identity) { m.change(func(st *state) { st.id = id }) }

// Identity returns the identity as it is now.
func (m *Modem) Identity() Identity {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.id
}

// SetSignal sets +CSQ's <rssi> (0..31, 99 unknown).
func (m *Modem) SetSignal(rssi int) { m.change(func(st *state) { st.id.RSSI = rssi }) }

// SetRegistration sets the registration state of every domain (CS, PS,
// EPS); ports with +CxREG=1/2 get the URC. Faults and AT+CFUN override it.
func (m *Modem) SetRegistration(r RegStat) { m.change(func(st *state) { st.reg = r }) }

// SetBearer sets what the network assigns to contexts activated from now on.
func (m *Modem) SetBearer(b BearerConfig) { m.change(func(st *state) { st.bearer = b }) }

// Context returns PDP context cid as the modem holds it.
func (m *Modem) Context(cid int) (PDPContext, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.st.ctxs[cid]
	if !ok {
		return PDPContext{}, false
	}
	return PDPContext{CID: c.cid, Type: c.typ, APN: c.apn, Active: c.active}, true
}

// InjectURC sends "\r\n<line>\r\n" to every port in command mode.
func (m *Modem) InjectURC(line string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.broadcast(func(*session) string { return line })
}

// InjectGarbage sends b as it is to every port in command mode.
func (m *Modem) InjectGarbage(b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for s := range m.sessions {
		if s.dataCID.Load() == 0 {
			s.offer(append([]byte(nil), b...))
		}
	}
}

// ErrNotActive says a context the caller named is not active.
var ErrNotActive = errors.New("pdp context not active")

// InjectNWDeact makes the network drop context cid: the context goes
// inactive, a data call on it ends with NO CARRIER, and every port with
// AT+CGEREP=1/2 gets +CGEV: NW DEACT "<type>","<address>",<cid>.
func (m *Modem) InjectNWDeact(cid int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.st.ctxs[cid]
	if !ok || !c.active {
		return fmt.Errorf("deactivate context %d: %w", cid, ErrNotActive)
	}
	v4, v6 := m.st.families(c)
	m.deactivate(c)
	m.broadcast(func(s *session) string {
		if s.cfg.cgerep == 0 {
			return ""
		}
		addr := ""
		switch {
		case v4:
			addr = m.st.bearer.IPv4.Addr().String()
		case v6:
			addr = s.cfg.fmtV6(m.st.bearer.IPv6.Addr())
		}
		return fmt.Sprintf("+CGEV: NW DEACT %s,%s,%d", quote(c.typ), quote(addr), cid)
	})
	return nil
}

// families says which address families context c gets from the bearer.
func (st *state) families(c *pdpContext) (v4, v6 bool) {
	v4 = (c.typ == "IP" || c.typ == "IPV4V6") && st.bearer.IPv4.IsValid()
	v6 = (c.typ == "IPV6" || c.typ == "IPV4V6") && st.bearer.IPv6.IsValid()
	return v4, v6
}

func (st *state) sortedContexts() []*pdpContext {
	out := make([]*pdpContext, 0, len(st.ctxs))
	for _, c := range st.ctxs {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].cid < out[j].cid })
	return out
}

// deactivate takes context c down; a data call on it (a port in data mode
// or one that left it with +++) ends, in data mode with NO CARRIER.
// Caller holds m.mu.
func (m *Modem) deactivate(c *pdpContext) {
	c.active = false
	for s := range m.sessions {
		if s.callCID != c.cid {
			continue
		}
		s.callCID = 0
		if s.dataCID.Load() == int32(c.cid) {
			s.dataCID.Store(0)
			msg := s.cfg.final("NO CARRIER")
			if s == m.cur {
				m.curURC = append(m.curURC, msg...)
			} else {
				s.offer(msg)
			}
		}
	}
}

// broadcast sends each command-mode port the URC fn makes for it ("" for
// none). The running command's port gets it after its answer. Caller holds
// m.mu.
func (m *Modem) broadcast(fn func(s *session) string) {
	for s := range m.sessions {
		if s.dataCID.Load() != 0 {
			continue
		}
		text := fn(s)
		if text == "" {
			continue
		}
		var b []byte
		for _, line := range strings.Split(text, "\n") {
			b = append(b, s.cfg.info(line)...)
		}
		if s == m.cur {
			m.curURC = append(m.curURC, b...)
		} else {
			s.offer(b)
		}
	}
}

// addrs returns the bearer addresses context c holds while active.
func (st *state) addrs(c *pdpContext) (v4, v6 netip.Prefix) {
	if !c.active {
		return
	}
	hasV4, hasV6 := st.families(c)
	if hasV4 {
		v4 = st.bearer.IPv4
	}
	if hasV6 {
		v6 = st.bearer.IPv6
	}
	return v4, v6
}
