// Package at is the AT command engine for modems driven over a serial port
// (or anything else that reads and writes bytes): it frames the modem's byte
// stream into lines, runs one command at a time, turns final result codes
// into errors a caller branches on, and splits unsolicited result codes
// (URCs) off to subscribers. The modem.Modem backend and the vendor
// data-call profiles built on the engine live beside it in this package.
//
// The engine expects verbose result codes (ATV1). Echo is tolerated whether
// or not ATE0 was sent.
package at

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultURCPrefixes are the line prefixes treated as unsolicited result
// codes: 3GPP TS 27.007/27.005 indications plus common vendor ones. A line
// the command in flight expects is its answer instead (see Command).
var DefaultURCPrefixes = []string{
	// registration and packet domain
	"+CREG:", "+CGREG:", "+CEREG:", "+C5GREG:", "+CGEV:",
	// calls, SMS, USSD, indicators, time zone
	"RING", "+CRING:", "+CLIP:", "+CCWA:", "+CMTI:", "+CMT:", "+CDSI:", "+CDS:",
	"+CBM:", "+CUSD:", "+CIEV:", "+CTZV:", "+CTZE:",
	// SIM and power state announced at boot
	"+CPIN:", "+CFUN:", "RDY", "+PACSP",
	// vendors: Quectel, Huawei, Icera, u-blox, SIMCom
	"+QIND:", "+QIURC:", "+QUSIM:", "^MODE:", "^RSSI:", "^HCSQ:", "^BOOT:",
	"^SRVST:", "^SIMST:", "^DSFLOWRPT:", "^NDISSTAT:", "^SYSSTART",
	"%IPDPACT:", "+UUPSDA:", "+UUPSDD:", "+UUSBCONF:", "SMS Ready", "Call Ready",
	"PB DONE", "SMS DONE",
}

// Options configure an Engine. The zero value works.
type Options struct {
	// Timeout bounds one command from the moment it gets its turn; a
	// shorter ctx deadline wins. Zero means 10s.
	Timeout time.Duration
	// MaxLine is the longest line kept, in bytes. A longer line is
	// discarded whole and counted (Stats.OverlongLines). Zero means 4096.
	MaxLine int
	// Trace, when set, sees every line on the wire: dir '>' for a command
	// sent, '<' for a line received. PINs and passwords in commands and
	// their echo are redacted. It is called from the reader goroutine and
	// from Command callers, so it must be safe for concurrent use, and it
	// must be quick: it runs on the reader's path.
	Trace func(dir byte, line string)
	// URCPrefixes are treated as URCs in addition to DefaultURCPrefixes.
	URCPrefixes []string
	// URCBuffer is each subscriber's channel capacity. Zero means 32.
	URCBuffer int
	// ResyncQuiet is how long the answer of a timed-out command may stay
	// silent before the next command is written anyway (see settle).
	// Zero means 2s.
	ResyncQuiet time.Duration
}

var errWriteStuck = errors.New("write: port takes no data")

// MaxResponseLines bounds the information lines kept for one command, so a
// modem that never ends its answer cannot grow memory until the timeout.
const MaxResponseLines = 1024

// URC is one unsolicited result code line and when it was read.
type URC struct {
	Line string
	Time time.Time
}

// Stats are the engine's counters since New, for metrics.
type Stats struct {
	GarbageBytes  uint64 // control bytes (NUL, noise) skipped
	OverlongLines uint64 // lines longer than MaxLine, discarded
	StrayLines    uint64 // lines with no command in flight that were no URC
	URCsDropped   uint64 // URCs lost because a subscriber's buffer was full
	Timeouts      uint64 // commands that failed with ErrTimeout
	Resyncs       uint64 // timed-out answers given up on after ResyncQuiet
}

// counters back Stats; updated with atomics from the reader and callers.
type counters struct {
	garbage, overlong, stray, urcDropped, timeouts, resyncs atomic.Uint64
}

// Engine runs AT commands over a port. Create it with New; it is safe for
// concurrent use.
type Engine struct {
	// Set by New, read-only afterwards.
	port      io.ReadWriter
	timeout   time.Duration
	maxLine   int
	quiet     time.Duration
	urcBuffer int
	trace     func(byte, string)
	urcs      []string
	done      chan struct{} // closed by shutdown, once

	// turn holds one token while a Command caller owns the wire: it settles,
	// writes and waits; other callers queue here.
	turn chan struct{}

	stats counters

	mu sync.Mutex
	// Guarded by mu. cur is set by the caller holding turn just before it
	// writes, and cleared by the reader when the final result code arrives,
	// or by the next caller in settle when a timed-out answer never came.
	cur  *call
	subs map[*subscriber]struct{} // added and removed by Subscribe, read by the reader
	err  error                    // set once by shutdown, before done closes
}

// call is one command on the wire. Its fields are guarded by Engine.mu.
type call struct {
	echo      string   // the command as sent, to recognise its echo
	answers   []string // answer prefixes that win over URC prefixes
	lines     []string
	overflow  bool
	abandoned bool      // the caller gave up; the reader swallows the rest of the answer
	last      time.Time // when an abandoned call last saw a line of its answer

	result  chan result   // capacity 1; the reader sends the outcome once (not if abandoned)
	settled chan struct{} // closed when the call stops being Engine.cur
}

type result struct {
	lines []string
	err   error
}

type subscriber struct {
	prefixes []string // empty: every URC
	ch       chan URC
}

// New starts an engine on port and its reader goroutine. The engine owns the
// port from now on: it closes it (if it is an io.Closer) when it stops.
func New(port io.ReadWriter, opts Options) *Engine {
	e := &Engine{
		port:      port,
		timeout:   orDefault(opts.Timeout, 10*time.Second),
		maxLine:   orDefault(opts.MaxLine, 4096),
		quiet:     orDefault(opts.ResyncQuiet, 2*time.Second),
		urcBuffer: orDefault(opts.URCBuffer, 32),
		trace:     opts.Trace,
		done:      make(chan struct{}),
		turn:      make(chan struct{}, 1),
		subs:      make(map[*subscriber]struct{}),
	}
	e.urcs = append(nonEmpty(DefaultURCPrefixes), nonEmpty(opts.URCPrefixes)...)
	go e.readLoop()
	return e
}

// Command writes cmd (the whole command, e.g. "AT+CGSN") followed by CR and
// waits for its final result code. It returns the information lines without
// echo, empty lines and URCs; after CONNECT the CONNECT line is the last one.
//
// Commands run one at a time; a caller waits for its turn as long as ctx
// allows. The command then has Options.Timeout (or less, if ctx ends sooner).
// A line that is both a URC and the answer, such as "+CREG: ..." for
// AT+CREG?, goes to the command whose name it carries, unless that command
// is a set command (AT+CREG=2), whose answer never carries it.
//
// Errors wrap the command (with secrets redacted) and one of: ErrError,
// *CMEError, *CMSError, ErrNoCarrier, ErrNoDialtone, ErrBusy, ErrNoAnswer,
// ErrTimeout, ErrResponseTooLong, ErrClosed, or ctx's error.
func (e *Engine) Command(ctx context.Context, cmd string) ([]string, error) {
	return e.CommandTimeout(ctx, cmd, 0)
}

// CommandTimeout is Command with its own timeout instead of Options.Timeout
// (zero or less: Options.Timeout), for commands that take long by design:
// AT+COPS=? scans for minutes, AT+CGACT may take 150s (3GPP TS 27.007).
func (e *Engine) CommandTimeout(ctx context.Context, cmd string, timeout time.Duration) ([]string, error) {
	if timeout <= 0 {
		timeout = e.timeout
	}
	name := redact(cmd)
	if strings.TrimSpace(cmd) == "" || strings.ContainsAny(cmd, "\r\n") {
		return nil, fmt.Errorf("at: invalid command %q: empty or holds CR/LF", name)
	}
	select {
	case e.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", name, e.ctxErr(ctx))
	case <-e.done:
		return nil, fmt.Errorf("%s: %w", name, e.Err())
	}
	defer func() { <-e.turn }()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lines, err := e.run(ctx, cmd, name, timeout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return lines, nil
}

// run executes one command; the caller holds the turn.
func (e *Engine) run(ctx context.Context, cmd, name string, timeout time.Duration) ([]string, error) {
	if err := e.settle(ctx); err != nil {
		return nil, err
	}
	c := &call{
		echo:    strings.TrimSpace(cmd),
		answers: expectPrefixes(cmd),
		result:  make(chan result, 1),
		settled: make(chan struct{}),
	}
	e.mu.Lock()
	if e.err != nil {
		e.mu.Unlock()
		return nil, e.err
	}
	e.cur = c // before writing: a fast modem may answer before Write returns
	e.mu.Unlock()

	e.traceLine('>', name)
	// Write in a goroutine so that ctx bounds even a write that blocks
	// (a wedged port with hardware flow control).
	written := make(chan error, 1)
	stuck := time.NewTimer(timeout)
	defer stuck.Stop()
	go func() {
		_, err := e.port.Write([]byte(cmd + "\r"))
		written <- err
	}()
	for {
		select {
		case err := <-written:
			if err != nil {
				e.shutdown(fmt.Errorf("write: %w", err))
				return nil, e.Err()
			}
			written = nil // done; a nil channel never fires again
		case r := <-c.result:
			return r.lines, r.err
		case <-ctx.Done():
			if written != nil {
				// Let a write that is merely late finish (the caller may
				// have cancelled just as it started); a port that takes
				// no bytes for a whole timeout is wedged, and stopping
				// the engine closes it, which also frees the writer.
				select {
				case err := <-written:
					if err != nil {
						e.shutdown(fmt.Errorf("write: %w", err))
						return nil, e.Err()
					}
				case <-stuck.C:
					e.shutdown(errWriteStuck)
					return nil, e.Err()
				case <-e.done:
					return nil, e.Err()
				}
			}
			return e.abandon(ctx, c)
		case <-e.done:
			return nil, e.Err()
		}
	}
}

// abandon gives up waiting for c. The command stays on the wire as Engine.cur
// so that the reader keeps swallowing its answer; settle decides when to stop
// waiting for it.
func (e *Engine) abandon(ctx context.Context, c *call) ([]string, error) {
	e.mu.Lock()
	if e.cur != c {
		// The reader finished c just now: its outcome is in c.result.
		e.mu.Unlock()
		r := <-c.result
		return r.lines, r.err
	}
	c.abandoned = true
	c.last = time.Now()
	e.mu.Unlock()
	return nil, e.ctxErr(ctx)
}

// settle runs before each command and waits, if the previous command timed
// out, until its answer is accounted for.
//
// Why: AT has no command identifiers. A modem that is merely slow answers a
// timed-out command later, and that "OK" would be taken as the next command's
// answer, whose own answer would then be taken for the one after, and so on:
// every later result off by one. So an abandoned command stays in flight and
// the reader swallows its answer up to its final result code; only then is
// the next command written. If the modem dropped the command and stays
// silent about it for ResyncQuiet, we give up on it (Stats.Resyncs) and go
// on. An answer later still would be taken by the next command, and so on
// until a pause lets a stray answer fall on an idle engine, which discards
// it. A unique-marker resync (a command whose answer carries a token we
// chose) would close that gap, but no such command is common to all modems;
// instead, callers give slow commands the time they need (CommandTimeout).
func (e *Engine) settle(ctx context.Context) error {
	for {
		e.mu.Lock()
		c := e.cur
		if c == nil {
			e.mu.Unlock()
			return nil
		}
		wait := e.quiet - time.Since(c.last)
		if wait <= 0 {
			e.cur = nil
			close(c.settled)
			e.stats.resyncs.Add(1)
			e.mu.Unlock()
			return nil
		}
		e.mu.Unlock()

		t := time.NewTimer(wait)
		select {
		case <-c.settled:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return e.ctxErr(ctx)
		case <-e.done:
			t.Stop()
			return e.Err()
		}
		t.Stop()
	}
}

// ctxErr turns a finished ctx into the error Command returns, counting
// timeouts.
func (e *Engine) ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		e.stats.timeouts.Add(1)
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

// Subscribe returns a channel of the URCs that start with one of prefixes
// (every URC if none are given) and a function that ends the subscription
// and closes the channel. The channel is also closed when the engine stops.
// A prefix given here counts as a URC prefix while the subscription lasts.
// The reader never waits for a subscriber: when the channel's buffer
// (Options.URCBuffer) is full, URCs are dropped and counted.
func (e *Engine) Subscribe(prefixes ...string) (<-chan URC, func()) {
	s := &subscriber{prefixes: nonEmpty(prefixes), ch: make(chan URC, e.urcBuffer)}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		close(s.ch)
		return s.ch, func() {}
	}
	e.subs[s] = struct{}{}
	return s.ch, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, ok := e.subs[s]; ok {
			delete(e.subs, s)
			close(s.ch)
		}
	}
}

func (s *subscriber) matches(line string) bool {
	if len(s.prefixes) == 0 {
		return true
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// Done is closed when the engine has stopped; Err then says why.
func (e *Engine) Done() <-chan struct{} { return e.done }

// Err is nil while the engine runs. Afterwards it wraps ErrClosed and, if
// the port died, the port's error.
func (e *Engine) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// Close stops the engine and closes the port. Commands in flight and later
// ones fail with ErrClosed.
func (e *Engine) Close() error {
	return e.shutdown(nil)
}

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	return Stats{
		GarbageBytes:  e.stats.garbage.Load(),
		OverlongLines: e.stats.overlong.Load(),
		StrayLines:    e.stats.stray.Load(),
		URCsDropped:   e.stats.urcDropped.Load(),
		Timeouts:      e.stats.timeouts.Load(),
		Resyncs:       e.stats.resyncs.Load(),
	}
}

// shutdown stops the engine once; cause nil means Close was called. It
// closes the port, which ends the reader and any blocked write. The returned
// error is the port's Close error, for the call that did the stopping.
func (e *Engine) shutdown(cause error) error {
	e.mu.Lock()
	if e.err != nil {
		e.mu.Unlock()
		return nil
	}
	e.err = ErrClosed
	if cause != nil {
		e.err = fmt.Errorf("%w: %w", ErrClosed, cause)
	}
	for s := range e.subs {
		close(s.ch)
	}
	e.subs = nil
	close(e.done)
	e.mu.Unlock()
	if c, ok := e.port.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (e *Engine) traceLine(dir byte, line string) {
	if e.trace != nil {
		e.trace(dir, line)
	}
}

// touch records activity on an abandoned call. Caller holds mu.
func (c *call) touch() {
	if c.abandoned {
		c.last = time.Now()
	}
}

// add appends an answer line, within MaxResponseLines. Caller holds mu.
func (c *call) add(line string) {
	switch {
	case c.abandoned:
		c.touch()
	case len(c.lines) >= MaxResponseLines:
		c.overflow = true
	default:
		c.lines = append(c.lines, line)
	}
}

func (c *call) expects(line string) bool {
	for _, p := range c.answers {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// expectPrefixes lists the answer prefixes of cmd's extended commands
// ("AT+CREG?;+CGREG?" expects "+CREG:" and "+CGREG:"). Set commands
// ("AT+CREG=2") are left out: their answer does not carry their name, while
// a URC with that name may well arrive during them.
func expectPrefixes(cmd string) []string {
	u := asciiUpper(strings.TrimSpace(cmd))
	if !strings.HasPrefix(u, "AT") {
		return nil
	}
	var out []string
	for _, part := range strings.Split(u[2:], ";") {
		part = strings.TrimSpace(part)
		if len(part) < 2 || !strings.ContainsRune("+%^$*", rune(part[0])) {
			continue
		}
		name, form := part, ""
		if i := strings.IndexAny(part, "=?"); i >= 0 {
			name, form = part[:i], part[i:]
		}
		if len(name) < 2 || (strings.HasPrefix(form, "=") && !strings.HasPrefix(form, "=?")) {
			continue
		}
		out = append(out, name+":")
	}
	return out
}

// secretCommands carry a PIN, a password or raw SIM APDUs (which can hold a
// PIN) in their parameters.
var secretCommands = []string{
	"+CPIN=", "+CPIN2=", "+CLCK=", "+CPWD=", "+CGAUTH=", "+CSIM=", "+CGLA=",
	"+QICSGP=", "$QCPDPP=", "^AUTHDATA=", "^NDISDUP=", "+UAUTHREQ=", "%IPDPCFG=",
}

// redact cuts the parameters off commands that carry secrets, so that traces
// and error messages never show them.
func redact(s string) string {
	u := asciiUpper(s) // same length as s, so indexes carry over
	for _, m := range secretCommands {
		if i := strings.Index(u, m); i >= 0 {
			return s[:i+len(m)] + "<redacted>"
		}
	}
	return s
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
