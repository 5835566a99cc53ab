package sim_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/simproof/simproof/modem/sim"
)

// answerWait bounds every wait for an answer. A prompt answer takes
// milliseconds; this only keeps a broken simulator from hanging the test.
const answerWait = 5 * time.Second

// wire is a tiny AT line reader over a serial port or a socket, kept here
// so these tests depend on nothing but the simulator.
type wire struct {
	t       *testing.T
	rw      io.ReadWriteCloser
	timeout func(d time.Duration) // the next Read returns within d
	buf     []byte
}

// openSerial opens link the way the AT backend does, with go.bug.st/serial.
func openSerial(t *testing.T, link string) *wire {
	t.Helper()
	p, err := serial.Open(link, &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatalf("open %s: %v", link, err)
	}
	t.Cleanup(func() { p.Close() })
	// Whatever an earlier client left unread is not this test's.
	if err := p.ResetInputBuffer(); err != nil {
		t.Fatalf("flush %s: %v", link, err)
	}
	return &wire{t: t, rw: p, timeout: func(d time.Duration) { p.SetReadTimeout(d) }}
}

func dialAbstract(t *testing.T, name string) *wire {
	t.Helper()
	c, err := net.Dial("unix", "@"+name)
	if err != nil {
		t.Fatalf("dial abstract %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return &wire{t: t, rw: c, timeout: func(d time.Duration) { c.SetReadDeadline(time.Now().Add(d)) }}
}

// read returns what arrives within d; an error means the port failed.
func (w *wire) read(d time.Duration) ([]byte, error) {
	w.timeout(d)
	b := make([]byte, 4096)
	n, err := w.rw.Read(b)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		err = nil
	}
	return b[:n], err
}

func (w *wire) send(s string) {
	w.t.Helper()
	if _, err := w.rw.Write([]byte(s)); err != nil {
		w.t.Fatalf("write %q: %v", s, err)
	}
}

// ask sends cmd (terminated by \r unless it carries its own terminator)
// and returns every byte up to the end of the final result code.
func (w *wire) ask(cmd string) string {
	w.t.Helper()
	if !strings.HasSuffix(cmd, "\r") && !strings.HasSuffix(cmd, "\n") {
		cmd += "\r"
	}
	w.send(cmd)
	return w.untilFinal()
}

func (w *wire) untilFinal() string {
	w.t.Helper()
	deadline := time.Now().Add(answerWait)
	for {
		if i := finalEnd(w.buf); i >= 0 {
			out := string(w.buf[:i])
			w.buf = w.buf[i:]
			return out
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("no final result code within %v; got %q", answerWait, w.buf)
		}
		b, err := w.read(100 * time.Millisecond)
		w.buf = append(w.buf, b...)
		if err != nil {
			w.t.Fatalf("read: %v (got %q)", err, w.buf)
		}
	}
}

// until reads until want has arrived and returns everything read up to it.
func (w *wire) until(want string) string {
	w.t.Helper()
	deadline := time.Now().Add(answerWait)
	for {
		if i := strings.Index(string(w.buf), want); i >= 0 {
			out := string(w.buf[:i+len(want)])
			w.buf = w.buf[i+len(want):]
			return out
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%q did not arrive within %v; got %q", want, answerWait, w.buf)
		}
		b, err := w.read(100 * time.Millisecond)
		w.buf = append(w.buf, b...)
		if err != nil {
			w.t.Fatalf("read: %v (got %q)", err, w.buf)
		}
	}
}

// quiet reads for d and returns whatever arrived.
func (w *wire) quiet(d time.Duration) string {
	w.t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		b, err := w.read(time.Until(end))
		w.buf = append(w.buf, b...)
		if err != nil {
			w.t.Fatalf("read: %v", err)
		}
	}
	out := string(w.buf)
	w.buf = nil
	return out
}

// finalEnd returns the end of the first final result code line in b, or -1.
// Lines end with "\r\n"; under ATV0 a final code is a digit and "\r".
func finalEnd(b []byte) int {
	start := 0
	for i := 0; i < len(b); i++ {
		if b[i] != '\r' {
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			if isFinal(strings.Trim(string(b[start:i]), "\r\n")) {
				return i + 2
			}
			start = i + 2
			i++
			continue
		}
		seg := strings.TrimLeft(string(b[start:i]), "\r\n")
		if len(seg) == 1 && seg[0] >= '0' && seg[0] <= '9' {
			return i + 1
		}
		start = i + 1
	}
	return -1
}

func isFinal(line string) bool {
	switch line {
	case "OK", "ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE":
		return true
	}
	return strings.HasPrefix(line, "+CME ERROR:") || strings.HasPrefix(line, "+CMS ERROR:") || strings.HasPrefix(line, "CONNECT")
}

// testIdentity has values the expected answers below spell out by hand.
func testIdentity() sim.Identity {
	return sim.Identity{
		Manufacturer: "Quux",
		Model:        "QM1",
		Revision:     "R1.2",
		IMEI:         "356938035643809",
		ICCID:        "8944110000000012345",
		IMSI:         "001010123456789",
		MSISDN:       "+447700900123",
		OperatorID:   "00101",
		OperatorName: "Test Operator",
		SPN:          "TestNet",
		RSSI:         20,
		AcT:          7,
	}
}

// newPTYModem starts a modem on a pty and opens it with echo off.
func newPTYModem(t *testing.T, id sim.Identity) (*sim.Modem, *wire, string) {
	t.Helper()
	m := sim.New(id)
	t.Cleanup(func() { m.Close() })
	link := filepath.Join(t.TempDir(), "ttySIM0")
	if err := m.ServePTY(link); err != nil {
		t.Fatalf("ServePTY: %v", err)
	}
	w := openSerial(t, link)
	if got := w.ask("ATE0"); got != "ATE0\r\r\nOK\r\n" {
		t.Fatalf("ATE0 = %q", got)
	}
	return m, w, link
}

// abstractName is unique to this process and test, so parallel test
// binaries never meet in the abstract namespace.
func abstractName(t *testing.T, port string) string {
	return fmt.Sprintf("abstract:simtest-%d-%s-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"), port)
}

// step is one command and its exact answer.
type step struct {
	send, want string
}

func run(t *testing.T, w *wire, steps []step) {
	t.Helper()
	for _, s := range steps {
		if got := w.ask(s.send); got != s.want {
			t.Errorf("%q:\n got %q\nwant %q", s.send, got, s.want)
		}
	}
}

// ok frames information lines as the simulator does, then OK.
func ok(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("\r\n" + l + "\r\n")
	}
	return b.String() + "\r\nOK\r\n"
}

func cme(n int) string { return fmt.Sprintf("\r\n+CME ERROR: %d\r\n", n) }
