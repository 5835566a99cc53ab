package at_test

import (
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simproof/simproof/modem/at"
)

// wait bounds every wait in these tests; a correct engine never comes close.
const wait = 5 * time.Second

// fakeModem is a scripted modem on the far end of a net.Pipe. Like a real
// one it reads commands up to CR and answers them strictly one after another.
type fakeModem struct {
	// Knobs, set before start.
	answer func(cmd string) string   // reply bytes; "" = the modem drops the command
	chunk  int                       // write replies this many bytes at a time; 0 = whole
	gates  map[string]chan struct{}  // the answer to cmd waits until its gate closes
	parts  func(cmd string) []string // optional: reply as several writes (overrides answer)

	conn    net.Conn
	seen    chan string   // every command received, in order
	stop    chan struct{} // closed at cleanup: frees a gated answer
	wmu     sync.Mutex    // one writer at a time (replies and inject)
	pending atomic.Int32  // commands received and not fully answered
	overlap atomic.Bool   // a command arrived while another was unanswered
}

// start connects the fake to a new engine and tears both down at cleanup.
func (f *fakeModem) start(t testing.TB, opts at.Options) *at.Engine {
	t.Helper()
	engSide, modemSide := net.Pipe()
	f.conn = modemSide
	f.seen = make(chan string, 1024)
	f.stop = make(chan struct{})
	queue := make(chan string, 1024)
	go f.readCommands(queue)
	go f.serve(queue)
	e := at.New(engSide, opts)
	t.Cleanup(func() {
		close(f.stop)
		e.Close()
		modemSide.Close()
	})
	return e
}

func (f *fakeModem) readCommands(queue chan<- string) {
	defer close(queue)
	var cur []byte
	buf := make([]byte, 256)
	for {
		n, err := f.conn.Read(buf)
		for _, b := range buf[:n] {
			if b != '\r' {
				cur = append(cur, b)
				continue
			}
			cmd := strings.Trim(string(cur), "\n")
			cur = cur[:0]
			if cmd == "" {
				continue
			}
			if f.pending.Add(1) > 1 {
				f.overlap.Store(true)
			}
			f.seen <- cmd
			queue <- cmd
		}
		if err != nil {
			return
		}
	}
}

func (f *fakeModem) serve(queue <-chan string) {
	for cmd := range queue {
		if g := f.gates[cmd]; g != nil {
			select {
			case <-g:
			case <-f.stop:
				return
			}
		}
		var parts []string
		if f.parts != nil {
			parts = f.parts(cmd)
		} else if f.answer != nil {
			if r := f.answer(cmd); r != "" {
				parts = []string{r}
			}
		}
		// The command counts as answered just before its last byte goes
		// out: the engine cannot see the final result code earlier, so a
		// command that arrives after this is no overlap.
		var chunks []string
		for _, p := range parts {
			chunks = append(chunks, split(p, f.chunk)...)
		}
		if len(chunks) == 0 {
			f.pending.Add(-1)
			continue
		}
		for i, c := range chunks {
			if i == len(chunks)-1 {
				f.pending.Add(-1)
			}
			if f.write(c) != nil {
				return
			}
		}
	}
}

// inject writes bytes from the modem unprompted (URCs, noise).
func (f *fakeModem) inject(s string) error { return f.write(s) }

func (f *fakeModem) write(s string) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	_, err := f.conn.Write([]byte(s))
	return err
}

// nextSeen returns the next command the modem received, bounded by wait.
func (f *fakeModem) nextSeen(t testing.TB) string {
	t.Helper()
	select {
	case c := <-f.seen:
		return c
	case <-time.After(wait):
		t.Fatal("the modem received no command")
		return ""
	}
}

func split(s string, n int) []string {
	if n <= 0 || len(s) <= n {
		return []string{s}
	}
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

// okAnswer answers every command with OK, for tests that do not care.
func okAnswer(string) string { return "\r\nOK\r\n" }

func isClosed(err error) bool { return errors.Is(err, at.ErrClosed) }
