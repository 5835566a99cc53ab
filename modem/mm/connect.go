package mm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"

	"github.com/simproof/simproof/modem"
)

// Modem is one ModemManager modem, addressed by its API id. It satisfies
// modem.Modem.
type Modem struct {
	b  *Backend
	id string

	mu   sync.Mutex
	last modem.Info // shown once the modem is gone
}

var _ modem.Modem = (*Modem)(nil)

// Info returns the modem as ModemManager shows it now, or as it was last
// seen when it has gone.
func (m *Modem) Info() modem.Info {
	m.b.mu.Lock()
	e := m.b.byIDLocked(m.id)
	var info modem.Info
	if e != nil {
		info = e.info
	}
	m.b.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e != nil {
		m.last = info
	}
	return m.last
}

// snapshot is what an operation needs of a modem, copied under the lock.
type snapshot struct {
	conn    *dbus.Conn
	path    dbus.ObjectPath
	info    modem.Info
	state   int32
	simple  bool
	bearers map[dbus.ObjectPath]props
	owned   []dbus.ObjectPath
	ctx     context.Context // cancelled with modem.ErrGone when the object goes
}

func (m *Modem) snapshot() (*snapshot, bool) {
	b := m.b
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.byIDLocked(m.id)
	if e == nil || b.conn == nil {
		return nil, false
	}
	s := &snapshot{
		conn: b.conn, path: e.path, info: e.info, ctx: e.ctx,
		state:   e.ifaces[ifModem].i32("State"),
		bearers: map[dbus.ObjectPath]props{},
	}
	_, s.simple = e.ifaces[ifSimple]
	for _, p := range e.ifaces[ifModem].paths("Bearers") {
		if r := b.bearers[p]; r != nil {
			s.bearers[p] = r.props
		}
	}
	for bearer, owner := range b.owned {
		if owner == e.path {
			s.owned = append(s.owned, bearer)
		}
	}
	return s, true
}

// opContext is ctx, also cancelled when the modem object goes away.
func opContext(ctx context.Context, s *snapshot) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// Connect brings a data session up and returns its interface and IP
// configuration. A bearer ModemManager already has connected with the same
// APN (NetworkManager may own it) is reused as it is; otherwise
// Modem.Simple.Connect creates one, which Disconnect later takes down.
//
// A static configuration is returned for netbind to apply (ModemManager
// leaves the interface unconfigured); dhcp is returned as such; a PPP bearer
// is an error wrapping modem.ErrUnsupported. A failed or locked modem is a
// *modem.StateError; a modem that goes away meanwhile, modem.ErrGone.
func (m *Modem) Connect(ctx context.Context, p modem.ConnectParams) (modem.DataInfo, error) {
	s, ok := m.snapshot()
	if !ok {
		return modem.DataInfo{}, fmt.Errorf("connect %s: %w", m.id, modem.ErrGone)
	}
	if err := stateError(s.info); err != nil {
		return modem.DataInfo{}, fmt.Errorf("connect %s: %w", m.id, err)
	}
	family, ok := ipFamily(p.IPType)
	if !ok {
		return modem.DataInfo{}, fmt.Errorf("connect %s: ip type %q: %w", m.id, p.IPType, errBadParams)
	}
	auth, ok := allowedAuth(p.Auth)
	if !ok {
		return modem.DataInfo{}, fmt.Errorf("connect %s: auth %q: %w", m.id, p.Auth, errBadParams)
	}
	for path, bp := range s.bearers {
		if reusable(bp, p.APN) {
			d := dataInfo(bp)
			if err := usable(d); err != nil {
				return d, fmt.Errorf("connect %s: existing bearer %s: %w", m.id, path, err)
			}
			return d, nil
		}
	}
	if !s.simple {
		return modem.DataInfo{}, fmt.Errorf("connect %s: modem in state %s has no Simple interface: %w", m.id, s.info.State, modem.ErrNoBearer)
	}
	ctx, cancel := opContext(ctx, s)
	defer cancel()
	obj := s.conn.Object(mmService, s.path)
	if m.b.opts.EnableModems && s.state == stateDisabled {
		ectx, ecancel := context.WithTimeout(ctx, m.b.opts.ConnectTimeout)
		err := obj.CallWithContext(ectx, ifModem+".Enable", dbus.FlagNoAutoStart, true).Err
		ecancel()
		if err != nil {
			return modem.DataInfo{}, m.callError(ctx, s, "enable", err)
		}
	}
	args := map[string]dbus.Variant{}
	if p.APN != "" {
		args["apn"] = dbus.MakeVariant(p.APN)
	}
	if family != 0 {
		args["ip-type"] = dbus.MakeVariant(family)
	}
	if auth != 0 {
		args["allowed-auth"] = dbus.MakeVariant(auth)
	}
	if p.User != "" {
		args["user"] = dbus.MakeVariant(p.User)
	}
	if p.Password != "" {
		args["password"] = dbus.MakeVariant(p.Password)
	}
	cctx, ccancel := context.WithTimeout(ctx, m.b.opts.ConnectTimeout)
	var bearer dbus.ObjectPath
	err := obj.CallWithContext(cctx, ifSimple+".Connect", dbus.FlagNoAutoStart, args).Store(&bearer)
	ccancel()
	if err != nil {
		return modem.DataInfo{}, m.callError(ctx, s, "connect", err)
	}
	m.b.mu.Lock()
	if m.b.modems[s.path] != nil {
		m.b.owned[bearer] = s.path
	}
	m.b.mu.Unlock()
	bp, _, err := m.b.getAll(ctx, s.conn, bearer, ifBearer)
	if err != nil {
		return modem.DataInfo{}, m.callError(ctx, s, "read bearer", err)
	}
	d := dataInfo(bp)
	if err := usable(d); err != nil {
		if errors.Is(err, modem.ErrUnsupported) {
			// Useless to simproof and it holds the port: take it down.
			m.drop(ctx, s, bearer)
		}
		return d, fmt.Errorf("connect %s: bearer %s: %w", m.id, bearer, err)
	}
	return d, nil
}

var errBadParams = errors.New("invalid connect parameters")

// reusable reports whether an existing bearer already gives the session
// wanted: connected, and on the same APN (any APN when none is asked for).
func reusable(bp props, apn string) bool {
	if !bp.boolean("Connected") {
		return false
	}
	return apn == "" || strings.EqualFold(bp.dict("Properties").str("apn"), apn)
}

// usable explains why a bearer's data session cannot carry simproof's
// traffic, or returns nil.
func usable(d modem.DataInfo) error {
	if !d.Connected {
		return fmt.Errorf("bearer not connected: %w", modem.ErrNoBearer)
	}
	for _, c := range []*modem.IPConfig{d.IPv4, d.IPv6} {
		if c != nil && c.Method == "ppp" {
			return fmt.Errorf("PPP on %s (ModemManager leaves PPP to its client): %w", d.Interface, modem.ErrUnsupported)
		}
	}
	if d.IPv4 == nil && d.IPv6 == nil {
		return fmt.Errorf("bearer on %q has no IP configuration: %w", d.Interface, modem.ErrNoBearer)
	}
	if d.Interface == "" {
		return fmt.Errorf("bearer has no data interface: %w", modem.ErrNoBearer)
	}
	return nil
}

// Disconnect takes down the bearers this backend created on the modem, and
// only those: a session NetworkManager brought up is not simproof's to end.
func (m *Modem) Disconnect(ctx context.Context) error {
	s, ok := m.snapshot()
	if !ok {
		return fmt.Errorf("disconnect %s: %w", m.id, modem.ErrGone)
	}
	ctx, cancel := opContext(ctx, s)
	defer cancel()
	var errs []error
	for _, bearer := range s.owned {
		if err := m.drop(ctx, s, bearer); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// drop disconnects and deletes a bearer this backend created. A bearer
// already gone is not an error.
func (m *Modem) drop(ctx context.Context, s *snapshot, bearer dbus.ObjectPath) error {
	ctx, cancel := context.WithTimeout(ctx, m.b.opts.CallTimeout)
	defer cancel()
	obj := s.conn.Object(mmService, s.path)
	err := obj.CallWithContext(ctx, ifSimple+".Disconnect", dbus.FlagNoAutoStart, bearer).Err
	if err == nil || isDBusError(err, mmErrNotFound...) {
		err = obj.CallWithContext(ctx, ifModem+".DeleteBearer", dbus.FlagNoAutoStart, bearer).Err
	}
	if err != nil && !isDBusError(err, mmErrNotFound...) {
		return m.callError(ctx, s, "disconnect "+string(bearer), err)
	}
	m.b.mu.Lock()
	delete(m.b.owned, bearer)
	m.b.mu.Unlock()
	return nil
}

// D-Bus error names that say the object or the daemon is not there.
var goneErrors = []string{
	"org.freedesktop.DBus.Error.ServiceUnknown",
	"org.freedesktop.DBus.Error.UnknownObject",
	"org.freedesktop.DBus.Error.UnknownInterface",
	"org.freedesktop.DBus.Error.UnknownMethod",
	"org.freedesktop.DBus.Error.NameHasNoOwner",
	"org.freedesktop.DBus.Error.NoReply",
	"org.freedesktop.DBus.Error.Disconnected",
}

var mmErrNotFound = []string{
	"org.freedesktop.ModemManager1.Error.Core.NotFound",
	"org.freedesktop.DBus.Error.UnknownObject",
	"org.freedesktop.DBus.Error.UnknownMethod",
}

func isDBusError(err error, names ...string) bool {
	var de dbus.Error
	if !errors.As(err, &de) {
		return false
	}
	for _, n := range names {
		if de.Name == n {
			return true
		}
	}
	return false
}

func dbusErrorName(err error) string {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name
	}
	return ""
}

// callError turns a failed ModemManager call into the error a caller
// branches on: modem.ErrGone when the modem went away (checked against the
// daemon, not guessed from the message), a *modem.StateError for SIM and
// registration trouble, else modem.ErrNoBearer with ModemManager's words.
func (m *Modem) callError(ctx context.Context, s *snapshot, op string, err error) error {
	if s.ctx.Err() != nil || m.gone(s) {
		return fmt.Errorf("%s %s: %w (%v)", op, m.id, modem.ErrGone, err)
	}
	name := dbusErrorName(err)
	const me = "org.freedesktop.ModemManager1.Error.MobileEquipment."
	switch {
	case name == me+"SimNotInserted":
		return fmt.Errorf("%s %s: %w", op, m.id, &modem.StateError{Err: modem.ErrSIMMissing, Reason: errReason(err)})
	case strings.HasPrefix(name, me+"SimPin"), strings.HasPrefix(name, me+"SimPuk"),
		strings.HasPrefix(name, me+"PhSim"), name == me+"SimWrong", name == me+"SimFailure":
		return fmt.Errorf("%s %s: %w", op, m.id, &modem.StateError{Err: modem.ErrSIMLocked, Reason: errReason(err)})
	}
	if info := m.Info(); info.State == "failed" || info.State == "locked" {
		if se := stateError(info); se != nil {
			return fmt.Errorf("%s %s: %w (%v)", op, m.id, se, err)
		}
	}
	if op == "connect" || op == "enable" {
		if reg := m.registration(ctx, s); reg != "" {
			return fmt.Errorf("%s %s: %w", op, m.id, &modem.StateError{Err: modem.ErrNotRegistered,
				Reason: "registration " + reg + ": " + errReason(err)})
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", op, m.id, ctx.Err())
	}
	return fmt.Errorf("%s %s: %w: %v", op, m.id, modem.ErrNoBearer, err)
}

// gone asks the daemon whether the modem object still exists.
func (m *Modem) gone(s *snapshot) bool {
	ctx, cancel := context.WithTimeout(m.b.ctx, m.b.opts.CallTimeout)
	defer cancel()
	err := s.conn.Object(mmService, s.path).CallWithContext(ctx, ifProps+".Get", dbus.FlagNoAutoStart, ifModem, "State").Err
	return err != nil && isDBusError(err, goneErrors...)
}

// registration returns the modem's registration state name when it is not
// registered for packet data, "" when it is (or cannot be read).
func (m *Modem) registration(ctx context.Context, s *snapshot) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.b.opts.CallTimeout)
	defer cancel()
	var v dbus.Variant
	err := s.conn.Object(mmService, s.path).CallWithContext(ctx, ifProps+".Get", dbus.FlagNoAutoStart, if3gpp, "RegistrationState").Store(&v)
	if err != nil {
		return ""
	}
	reg, ok := v.Value().(uint32)
	if !ok || registered(reg) {
		return ""
	}
	return registrationName(reg)
}

// errReason is ModemManager's message for an error, bounded.
func errReason(err error) string {
	var de dbus.Error
	if errors.As(err, &de) {
		msg := de.Name
		if len(de.Body) > 0 {
			if s, ok := de.Body[0].(string); ok {
				msg += ": " + s
			}
		}
		if len(msg) > maxString {
			msg = msg[:maxString]
		}
		return msg
	}
	return err.Error()
}
