package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	maxLine  = 1024 // a longer command line is discarded and answered with an error
	outQueue = 64   // answers and URCs waiting for the writer; URCs beyond it are dropped
)

// sessionConfig is what one port has set for itself. Guarded by Modem.mu.
type sessionConfig struct {
	echo, verbose, quiet bool
	cmee                 int
	reg                  [4]int // URC modes of +CREG, +CGREG, +CEREG, +C5GREG
	copsFormat           int    // 0 long, 1 short, 2 numeric
	cgerep               int
	cmerMode, cmerInd    int
	cscs                 string
	ifc                  [2]int
	piaf                 [4]int // +CGPIAF: format, subnet notation, leading zeros, compress zeros
	sreg                 [13]int
}

func defaultConfig() sessionConfig {
	c := sessionConfig{echo: true, verbose: true, cmee: 1, cscs: "IRA", ifc: [2]int{2, 2}}
	c.sreg[3], c.sreg[4], c.sreg[5], c.sreg[7], c.sreg[10] = 13, 10, 8, 50, 1
	return c
}

// info frames an information line or URC.
func (c *sessionConfig) info(line string) []byte {
	if !c.verbose {
		return []byte(line + "\r\n")
	}
	return []byte("\r\n" + line + "\r\n")
}

var numericCodes = map[string]string{"OK": "0", "CONNECT": "1", "NO CARRIER": "3", "ERROR": "4"}

// final frames a final result code (OK, CONNECT ..., NO CARRIER, ERROR).
func (c *sessionConfig) final(code string) []byte {
	if c.quiet {
		return nil
	}
	if !c.verbose {
		word, _, _ := strings.Cut(code, " ")
		if n, ok := numericCodes[code]; ok {
			return []byte(n + "\r")
		}
		if n, ok := numericCodes[word]; ok {
			return []byte(n + "\r")
		}
	}
	return []byte("\r\n" + code + "\r\n")
}

// failure frames err as +CMEE asks.
func (c *sessionConfig) failure(err error) []byte {
	var ce cmeError
	if c.cmee == 0 || !errors.As(err, &ce) {
		return c.final("ERROR")
	}
	if c.quiet {
		return nil
	}
	if c.cmee == 2 {
		return c.info("+CME ERROR: " + ce.text())
	}
	return c.info("+CME ERROR: " + strconv.Itoa(int(ce)))
}

// session is one open port: a connection or a pty, its own settings, one
// reader goroutine (readLoop, which runs the commands) and one writer.
type session struct {
	m    *Modem
	conn io.ReadWriteCloser
	quit <-chan struct{} // closed by the transport before it closes conn
	out  chan []byte
	stop chan struct{} // closed when the session ends or its writer fails
	once sync.Once

	dataCID atomic.Int32 // nonzero: in data mode on that context; written with Modem.mu held

	// Guarded by Modem.mu.
	cfg     sessionConfig
	callCID int // context of the data call dialled here, kept after +++

	// Owned by the reader goroutine.
	last string // for A/
}

func newSession(m *Modem, conn io.ReadWriteCloser, quit <-chan struct{}) *session {
	return &session{m: m, conn: conn, quit: quit, out: make(chan []byte, outQueue), stop: make(chan struct{}), cfg: defaultConfig()}
}

func (s *session) halt() { s.once.Do(func() { close(s.stop) }) }

// send queues b for the writer, waiting while the queue is full.
func (s *session) send(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	select {
	case s.out <- b:
		return true
	case <-s.stop:
	case <-s.quit:
	}
	return false
}

// offer queues b unless the queue is full: a URC nobody reads is lost, as
// on a real port, and never blocks the goroutine that raised it.
func (s *session) offer(b []byte) {
	if len(b) == 0 {
		return
	}
	select {
	case s.out <- b:
	default:
	}
}

func (s *session) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop:
	case <-s.quit:
	}
	return false
}

func (s *session) writeLoop() {
	for {
		select {
		case b := <-s.out:
			if _, err := s.conn.Write(b); err != nil {
				s.halt()
				return
			}
		case <-s.stop:
			return
		}
	}
}

// serve runs one port until its connection fails or the transport closes
// it. The caller's goroutine reads and runs commands; one more writes.
func (m *Modem) serve(conn io.ReadWriteCloser, quit <-chan struct{}) {
	s := newSession(m, conn, quit)
	m.mu.Lock()
	m.sessions[s] = struct{}{}
	m.mu.Unlock()

	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		s.writeLoop()
	}()
	s.readLoop()

	m.mu.Lock()
	delete(m.sessions, s)
	// A port closing under a data call is DTR dropping: the call ends.
	if c, ok := m.st.ctxs[s.callCID]; ok && s.callCID != 0 && c.active {
		m.deactivate(c)
	}
	m.mu.Unlock()
	s.halt()
	conn.Close()
	<-wrote
}

func (s *session) readLoop() {
	buf := make([]byte, 512)
	line := make([]byte, 0, 128)
	overflow := false
	plus := 0
	for {
		n, err := s.conn.Read(buf)
		for _, c := range buf[:n] {
			if s.dataCID.Load() != 0 {
				// Data mode: bytes are the data call's; only +++ matters.
				if c != '+' {
					plus = 0
					continue
				}
				if plus++; plus == 3 {
					plus = 0
					s.escape()
				}
				continue
			}
			switch c {
			case '\r', '\n':
				if overflow {
					s.m.mu.Lock()
					b := s.cfg.failure(errPlain)
					s.m.mu.Unlock()
					if !s.send(b) {
						return
					}
				} else if len(line) > 0 && !s.handleLine(line) {
					return
				}
				line, overflow = line[:0], false
			case 0x08: // backspace, as S5 says
				if len(line) > 0 {
					line = line[:len(line)-1]
				}
			default:
				if len(line) < maxLine {
					line = append(line, c)
				} else {
					overflow = true
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// escape leaves data mode after +++; the call stays up (ATO, ATH).
func (s *session) escape() {
	s.m.mu.Lock()
	s.dataCID.Store(0)
	b := s.cfg.final("OK")
	s.m.mu.Unlock()
	s.send(b)
}

// findAT returns where the command starts: a modem ignores whatever comes
// before "AT" (or "A/") on a line.
func findAT(line []byte) int {
	for i := 0; i+1 < len(line); i++ {
		if line[i] == 'A' || line[i] == 'a' {
			switch line[i+1] {
			case 'T', 't', '/':
				return i
			}
		}
	}
	return -1
}

// handleLine echoes a command line, runs it, and queues the answer. It
// returns false when the session is ending.
func (s *session) handleLine(line []byte) bool {
	m := s.m
	m.mu.Lock()
	f := m.st.faults
	echo := s.cfg.echo
	m.mu.Unlock()
	if f.Silent {
		return true
	}
	if echo && !s.send(append(bytes.Clone(line), '\r')) {
		return false
	}
	i := findAT(line)
	if i < 0 {
		return true
	}
	cmd := string(line[i:])
	if cmd[1] == '/' {
		cmd = s.last
		if cmd == "" {
			cmd = "AT"
		}
	} else {
		s.last = cmd
	}
	if f.Delay > 0 && !s.sleep(f.Delay) {
		return false
	}
	m.mu.Lock()
	out := m.execute(s, cmd[2:])
	m.mu.Unlock()
	return s.send(out)
}

// execute runs the commands of one line (the text after "AT") and returns
// the answer, its URCs behind it. Caller holds m.mu.
func (m *Modem) execute(s *session, body string) []byte {
	var b bytes.Buffer
	if g := m.st.faults.GarbageEvery; g > 0 {
		if m.st.answers++; m.st.answers%g == 0 {
			b.WriteString(Garbage)
		}
	}
	m.cur, m.curURC = s, nil
	defer func() { m.cur, m.curURC = nil, nil }()

	reqs, err := parseLine(body)
	c := &call{m: m, st: &m.st, s: s}
	if err == nil {
		for _, r := range reqs {
			c.req = r
			h, ok := m.table[r.name]
			if !ok || m.st.disabled[r.name] {
				err = errUnsupported
			} else {
				err = h(c)
			}
			if err != nil || c.final != "" {
				break
			}
		}
	}
	for _, l := range c.lines {
		b.Write(s.cfg.info(l))
	}
	switch {
	case err != nil:
		b.Write(s.cfg.failure(err))
	case c.final != "":
		b.Write(s.cfg.final(c.final))
	default:
		b.Write(s.cfg.final("OK"))
	}
	b.Write(m.curURC)
	return b.Bytes()
}

// op is the form of an extended command.
type op int

const (
	opExec  op = iota // AT+X, and every basic command
	opSet             // AT+X=...
	opQuery           // AT+X?
	opTest            // AT+X=?
)

// request is one command of a line.
type request struct {
	name string // upper case with its prefix: "+CGDCONT", "^NDISDUP", "E", "&C", "D", "S"
	op   op
	args string // after '='; the digits of a basic command; the dial string; S: "<n>" or "<n>=<v>"
}

// errPlain answers ERROR whatever +CMEE says: a line the modem cannot parse.
var errPlain = errors.New("ERROR")

const extPrefixes = "+*^$%!#@"

func isNameChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseLine splits the text after "AT" into commands: basic ones (E0, &C1,
// S0=0, D... to the end of the line) and extended ones separated by ';'.
func parseLine(body string) ([]request, error) {
	var reqs []request
	i := 0
	for i < len(body) {
		c := body[i]
		switch {
		case c == ' ' || c == ';':
			i++
		case strings.IndexByte(extPrefixes, c) >= 0:
			j := i + 1
			for j < len(body) && isNameChar(body[j]) {
				j++
			}
			if j == i+1 {
				return nil, errPlain
			}
			r := request{name: strings.ToUpper(body[i:j])}
			switch {
			case strings.HasPrefix(body[j:], "=?"):
				r.op, j = opTest, j+2
			case strings.HasPrefix(body[j:], "="):
				k, err := argsEnd(body, j+1)
				if err != nil {
					return nil, err
				}
				r.op, r.args, j = opSet, strings.TrimSpace(body[j+1:k]), k
			case strings.HasPrefix(body[j:], "?"):
				r.op, j = opQuery, j+1
			}
			for j < len(body) && body[j] == ' ' {
				j++
			}
			if j < len(body) && body[j] != ';' {
				return nil, errPlain
			}
			reqs, i = append(reqs, r), j
		case c == '&':
			if i+1 >= len(body) || !isLetter(body[i+1]) {
				return nil, errPlain
			}
			j := i + 2
			for j < len(body) && isDigit(body[j]) {
				j++
			}
			reqs = append(reqs, request{name: "&" + strings.ToUpper(body[i+1:i+2]), args: body[i+2 : j]})
			i = j
		case isLetter(c):
			name := strings.ToUpper(body[i : i+1])
			j := i + 1
			switch name {
			case "D":
				return append(reqs, request{name: "D", args: body[j:]}), nil
			case "S":
				k := j
				for k < len(body) && isDigit(body[k]) {
					k++
				}
				if k == j || k >= len(body) {
					return nil, errPlain
				}
				r := request{name: "S", args: body[j:k]}
				switch {
				case strings.HasPrefix(body[k:], "=?"):
					r.op, k = opTest, k+2
				case body[k] == '?':
					r.op, k = opQuery, k+1
				case body[k] == '=':
					v := k + 1
					for v < len(body) && isDigit(body[v]) {
						v++
					}
					r.op, r.args, k = opSet, body[j:k]+"="+body[k+1:v], v
				default:
					return nil, errPlain
				}
				reqs, i = append(reqs, r), k
				continue
			}
			for j < len(body) && isDigit(body[j]) {
				j++
			}
			reqs, i = append(reqs, request{name: name, args: body[i+1 : j]}), j
		default:
			return nil, errPlain
		}
	}
	return reqs, nil
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// argsEnd finds the ';' ending an extended command's arguments, outside
// quotes.
func argsEnd(body string, from int) (int, error) {
	quoted := false
	for k := from; k < len(body); k++ {
		switch body[k] {
		case '"':
			quoted = !quoted
		case ';':
			if !quoted {
				return k, nil
			}
		}
	}
	if quoted {
		return 0, errPlain
	}
	return len(body), nil
}

// param is one comma-separated argument.
type param struct {
	val    string
	quoted bool
}

// params splits a request's arguments at commas outside quotes; quotes are
// removed, spaces around unquoted values trimmed.
func (r request) params() []param {
	if strings.TrimSpace(r.args) == "" {
		return nil
	}
	var out []param
	var cur strings.Builder
	quoted, wasQuoted := false, false
	flush := func() {
		v := cur.String()
		if !wasQuoted {
			v = strings.TrimSpace(v)
		}
		out = append(out, param{val: v, quoted: wasQuoted})
		cur.Reset()
		wasQuoted = false
	}
	for i := 0; i < len(r.args); i++ {
		c := r.args[i]
		switch {
		case c == '"':
			quoted = !quoted
			wasQuoted = true
		case c == ',' && !quoted:
			flush()
		case quoted || c != ' ' || cur.Len() > 0:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

// call is one command being run: the handler's view of the modem.
type call struct {
	m     *Modem
	st    *state
	s     *session
	req   request
	lines []string
	final string // a final result code other than OK (CONNECT ..., NO CARRIER)
}

// handler runs one command with Modem.mu held.
type handler func(c *call) error

func (c *call) say(format string, a ...any) {
	c.lines = append(c.lines, fmt.Sprintf(format, a...))
}

func (c *call) params() []param { return c.req.params() }

// intArg returns parameter i as an integer in [lo, hi]; def when absent.
func (c *call) intArg(ps []param, i, def, lo, hi int) (int, error) {
	if i >= len(ps) || ps[i].val == "" {
		return def, nil
	}
	n, err := strconv.Atoi(ps[i].val)
	if err != nil || n < lo || n > hi {
		return 0, errIncorrectParams
	}
	return n, nil
}

// needArg returns parameter i as an integer in [lo, hi]; a missing one is
// an error.
func (c *call) needArg(ps []param, i, lo, hi int) (int, error) {
	if i >= len(ps) || ps[i].val == "" {
		return 0, errIncorrectParams
	}
	return c.intArg(ps, i, 0, lo, hi)
}

// strArg returns parameter i, or "" when absent.
func strArg(ps []param, i int) string {
	if i < len(ps) {
		return ps[i].val
	}
	return ""
}

// basicArg is a basic command's digit (ATE, ATE0 = 0), within [lo, hi].
func (c *call) basicArg(lo, hi int) (int, error) {
	if c.req.args == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(c.req.args)
	if err != nil || n < lo || n > hi {
		return 0, errPlain
	}
	return n, nil
}
