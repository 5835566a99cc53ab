package at_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simproof/simproof/modem/at"
)

func answers(m map[string]string) func(string) string {
	return func(cmd string) string {
		if r, ok := m[cmd]; ok {
			return r
		}
		return "\r\n+CME ERROR: 4\r\n"
	}
}

// TestLateAnswer: a command times out and its answer comes later. That late
// answer must never be taken for the next command's answer.
func TestLateAnswer(t *testing.T) {
	const (
		late = "\r\n111111111111111\r\n\r\nOK\r\n" // AT+CGSN's answer
		own  = "\r\n222222222222222\r\n\r\nOK\r\n" // AT+CIMI's answer
	)
	timeOut := func(t *testing.T, e *at.Engine) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := e.Command(ctx, "AT+CGSN")
		if !errors.Is(err, at.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("AT+CGSN: got %v, want ErrTimeout", err)
		}
		if !strings.HasPrefix(err.Error(), "AT+CGSN: ") {
			t.Errorf("error %q does not name the command", err)
		}
	}
	wantOwn := func(t *testing.T, lines []string, err error) {
		t.Helper()
		if err != nil || !reflect.DeepEqual(lines, []string{"222222222222222"}) {
			t.Fatalf("AT+CIMI: got %q, %v; want its own answer", lines, err)
		}
	}

	t.Run("arrives while the next command waits", func(t *testing.T) {
		release := make(chan struct{})
		fm := &fakeModem{
			answer: answers(map[string]string{"AT+CGSN": late, "AT+CIMI": own}),
			gates:  map[string]chan struct{}{"AT+CGSN": release},
		}
		// ResyncQuiet far beyond the test's bound: only the late answer
		// itself may release the next command.
		e := fm.start(t, at.Options{Timeout: wait, ResyncQuiet: time.Hour})
		timeOut(t, e)
		fm.nextSeen(t)

		type res struct {
			lines []string
			err   error
		}
		next := make(chan res, 1)
		go func() {
			l, err := e.Command(context.Background(), "AT+CIMI")
			next <- res{l, err}
		}()
		// While the old answer is outstanding the next command must stay
		// off the wire; a real modem would answer it after the old one.
		select {
		case c := <-fm.seen:
			t.Fatalf("%s written while AT+CGSN's answer was outstanding", c)
		case <-time.After(100 * time.Millisecond):
		}
		close(release)
		if c := fm.nextSeen(t); c != "AT+CIMI" {
			t.Fatalf("modem received %q", c)
		}
		select {
		case r := <-next:
			wantOwn(t, r.lines, r.err)
		case <-time.After(wait):
			t.Fatal("AT+CIMI never returned")
		}
		if s := e.Stats(); s.Timeouts != 1 || s.Resyncs != 0 {
			t.Errorf("stats %+v, want 1 timeout, 0 resyncs", s)
		}
	})

	t.Run("arrives before the next command", func(t *testing.T) {
		release := make(chan struct{})
		fm := &fakeModem{
			answer: answers(map[string]string{"AT+CGSN": late, "AT+CIMI": own}),
			gates:  map[string]chan struct{}{"AT+CGSN": release},
		}
		received := make(chan string, 16)
		e := fm.start(t, at.Options{Timeout: wait, ResyncQuiet: time.Hour,
			Trace: func(dir byte, line string) {
				if dir == '<' {
					received <- line
				}
			}})
		timeOut(t, e)
		close(release)
		for l := ""; l != "OK"; {
			select {
			case l = <-received:
			case <-time.After(wait):
				t.Fatal("the late answer never arrived")
			}
		}
		l, err := e.Command(context.Background(), "AT+CIMI")
		wantOwn(t, l, err)
		if s := e.Stats(); s.StrayLines != 0 {
			t.Errorf("late answer counted as %d stray lines; it belongs to AT+CGSN", s.StrayLines)
		}
	})

	t.Run("never arrives", func(t *testing.T) {
		// The modem drops AT+CGSN: after ResyncQuiet of silence the
		// engine gives up on that answer and goes on.
		fm := &fakeModem{answer: answers(map[string]string{"AT+CGSN": "", "AT+CIMI": own})}
		e := fm.start(t, at.Options{Timeout: wait, ResyncQuiet: 20 * time.Millisecond})
		timeOut(t, e)
		l, err := e.Command(context.Background(), "AT+CIMI")
		wantOwn(t, l, err)
		if s := e.Stats(); s.Resyncs != 1 || s.Timeouts != 1 {
			t.Errorf("stats %+v, want 1 resync, 1 timeout", s)
		}
	})

	t.Run("cancelled by the caller", func(t *testing.T) {
		release := make(chan struct{})
		fm := &fakeModem{
			answer: answers(map[string]string{"AT+CGSN": late, "AT+CIMI": own}),
			gates:  map[string]chan struct{}{"AT+CGSN": release},
		}
		e := fm.start(t, at.Options{Timeout: wait, ResyncQuiet: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := e.Command(ctx, "AT+CGSN")
			errc <- err
		}()
		fm.nextSeen(t)
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) || errors.Is(err, at.ErrTimeout) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
		case <-time.After(wait):
			t.Fatal("cancelled command did not return")
		}
		close(release)
		l, err := e.Command(context.Background(), "AT+CIMI")
		wantOwn(t, l, err)
	})
}

// TestConcurrentCommands: many callers, one command on the wire at a time,
// everyone gets their own answer.
func TestConcurrentCommands(t *testing.T) {
	fm := &fakeModem{chunk: 3, answer: func(cmd string) string {
		return fmt.Sprintf("\r\n+X: %s\r\n\r\nOK\r\n", strings.TrimPrefix(cmd, "AT+X"))
	}}
	e := fm.start(t, at.Options{Timeout: wait})
	const callers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, callers*each)
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("%d.%d", g, i)
				lines, err := e.Command(context.Background(), "AT+X"+id)
				if err != nil || len(lines) != 1 || lines[0] != "+X: "+id {
					errs <- fmt.Errorf("AT+X%s: got %q, %v", id, lines, err)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("callers did not finish")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if fm.overlap.Load() {
		t.Error("a command was written while another was unanswered")
	}
}

// TestQueuedCommandRespectsContext: a caller waiting for its turn leaves
// when its ctx ends, without writing anything.
func TestQueuedCommandRespectsContext(t *testing.T) {
	release := make(chan struct{})
	fm := &fakeModem{answer: okAnswer, gates: map[string]chan struct{}{"AT+SLOW": release}}
	e := fm.start(t, at.Options{Timeout: wait})
	first := make(chan error, 1)
	go func() {
		_, err := e.Command(context.Background(), "AT+SLOW")
		first <- err
	}()
	fm.nextSeen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := e.Command(ctx, "AT+QUEUED"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued command: got %v, want deadline exceeded", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("AT+SLOW: %v", err)
	}
	if _, err := e.Command(context.Background(), "AT"); err != nil {
		t.Fatal(err)
	}
	if c := fm.nextSeen(t); c != "AT" {
		t.Fatalf("modem received %q after AT+SLOW, want AT (AT+QUEUED must not be written)", c)
	}
}

// TestPortEOF: the port dies under a command in flight.
func TestPortEOF(t *testing.T) {
	fm := &fakeModem{answer: okAnswer, gates: map[string]chan struct{}{"AT+CGSN": make(chan struct{})}}
	e := fm.start(t, at.Options{Timeout: wait})
	urcs, _ := e.Subscribe()
	errc := make(chan error, 1)
	go func() {
		_, err := e.Command(context.Background(), "AT+CGSN")
		errc <- err
	}()
	fm.nextSeen(t)
	fm.conn.Close() // unplugged

	select {
	case err := <-errc:
		if !isClosed(err) || !errors.Is(err, io.EOF) {
			t.Fatalf("in flight: got %v, want ErrClosed wrapping EOF", err)
		}
	case <-time.After(wait):
		t.Fatal("in-flight command did not return")
	}
	select {
	case <-e.Done():
	case <-time.After(wait):
		t.Fatal("Done not closed")
	}
	if err := e.Err(); !isClosed(err) || !errors.Is(err, io.EOF) {
		t.Errorf("Err() = %v", err)
	}
	if _, err := e.Command(context.Background(), "AT"); !isClosed(err) || !errors.Is(err, io.EOF) {
		t.Errorf("later command: got %v, want ErrClosed", err)
	}
	select {
	case _, ok := <-urcs:
		if ok {
			t.Error("URC channel delivered after death")
		}
	case <-time.After(wait):
		t.Error("URC channel not closed")
	}
	if ch, _ := e.Subscribe(); ch == nil {
		t.Error("Subscribe after death returned nil")
	} else if _, ok := <-ch; ok {
		t.Error("Subscribe after death: channel open")
	}
}

// TestClose: Close stops the engine and closes the port.
func TestClose(t *testing.T) {
	fm := &fakeModem{answer: okAnswer}
	e := fm.start(t, at.Options{Timeout: wait})
	if _, err := e.Command(context.Background(), "AT"); err != nil {
		t.Fatal(err)
	}
	if e.Err() != nil {
		t.Fatalf("Err() = %v while running", e.Err())
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	<-e.Done() // closed by Close itself
	if err := e.Err(); !errors.Is(err, at.ErrClosed) {
		t.Errorf("Err() = %v", err)
	}
	if _, err := e.Command(context.Background(), "AT"); !isClosed(err) {
		t.Errorf("after Close: got %v", err)
	}
	fm.conn.SetReadDeadline(time.Now().Add(wait))
	if _, err := fm.conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("modem side read %v, want EOF: the port was not closed", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// failingPort reads nothing until closed and fails every write.
type failingPort struct{ closed chan struct{} }

func (p failingPort) Read([]byte) (int, error) { <-p.closed; return 0, io.EOF }
func (p failingPort) Write([]byte) (int, error) {
	return 0, errors.New("input/output error")
}
func (p failingPort) Close() error { close(p.closed); return nil }

func TestWriteError(t *testing.T) {
	e := at.New(failingPort{closed: make(chan struct{})}, at.Options{Timeout: wait})
	defer e.Close()
	_, err := e.Command(context.Background(), "AT")
	if !isClosed(err) || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("got %v, want ErrClosed with the write error", err)
	}
	select {
	case <-e.Done():
	case <-time.After(wait):
		t.Fatal("Done not closed")
	}
}

// TestOverlongBounded: a megabyte without a line end does not end up in a
// line; the answer after it still parses.
func TestOverlongBounded(t *testing.T) {
	flood := strings.Repeat("A", 1<<20)
	fm := &fakeModem{chunk: 4096, answer: answers(map[string]string{
		"AT+CGMR": "\r\n" + flood + "\r\nSIMFW_1.0.0\r\n\r\nOK\r\n",
	})}
	e := fm.start(t, at.Options{Timeout: wait})
	lines, err := e.Command(context.Background(), "AT+CGMR")
	if err != nil || !reflect.DeepEqual(lines, []string{"SIMFW_1.0.0"}) {
		t.Fatalf("got %q, %v", lines, err)
	}
	if s := e.Stats(); s.OverlongLines != 1 {
		t.Errorf("OverlongLines = %d, want 1", s.OverlongLines)
	}
}

// TestResponseTooLong: a modem streaming information lines without end
// cannot grow memory past MaxResponseLines.
func TestResponseTooLong(t *testing.T) {
	body := strings.Repeat("+CMGL: 1,0,,23\r\n", at.MaxResponseLines+5)
	fm := &fakeModem{answer: answers(map[string]string{"AT+CMGL=4": "\r\n" + body + "OK\r\n"})}
	e := fm.start(t, at.Options{Timeout: wait})
	_, err := e.Command(context.Background(), "AT+CMGL=4")
	if !errors.Is(err, at.ErrResponseTooLong) {
		t.Fatalf("got %v, want ErrResponseTooLong", err)
	}
}

// TestSlowSubscriber: a subscriber that never reads must not stall the
// reader; its losses are counted; others still get theirs.
func TestSlowSubscriber(t *testing.T) {
	fm := &fakeModem{answer: answers(map[string]string{"AT+CSQ": "\r\n+CSQ: 20,99\r\n\r\nOK\r\n"})}
	e := fm.start(t, at.Options{Timeout: wait, URCBuffer: 4})
	_, _ = e.Subscribe("+CREG:") // never read
	regs, stopRegs := e.Subscribe("+CEREG:")
	const n = 100
	for i := range n {
		if err := fm.inject(fmt.Sprintf("\r\n+CREG: %d\r\n", i%6)); err != nil {
			t.Fatal(err)
		}
	}
	if err := fm.inject("\r\n+CEREG: 1\r\n"); err != nil {
		t.Fatal(err)
	}
	lines, err := e.Command(context.Background(), "AT+CSQ")
	if err != nil || !reflect.DeepEqual(lines, []string{"+CSQ: 20,99"}) {
		t.Fatalf("AT+CSQ: got %q, %v", lines, err)
	}
	if s := e.Stats(); s.URCsDropped != n-4 {
		t.Errorf("URCsDropped = %d, want %d", s.URCsDropped, n-4)
	}
	select {
	case u := <-regs:
		if u.Line != "+CEREG: 1" {
			t.Errorf("got %q", u.Line)
		}
	case <-time.After(wait):
		t.Fatal("+CEREG URC never arrived")
	}
	stopRegs()
	stopRegs() // idempotent
	if _, ok := <-regs; ok {
		t.Error("channel open after unsubscribe")
	}
}

// TestSubscribedPrefixIsURC: a prefix a caller subscribes to counts as a URC
// even if it is not in the default list, and Options.URCPrefixes extend it.
func TestSubscribedPrefixIsURC(t *testing.T) {
	fm := &fakeModem{answer: answers(map[string]string{
		"AT+CSQ": "\r\n+VNDA: 1\r\n+VNDB: 2\r\n+CSQ: 20,99\r\n\r\nOK\r\n",
	})}
	e := fm.start(t, at.Options{Timeout: wait, URCPrefixes: []string{"+VNDB:"}})
	a, _ := e.Subscribe("+VNDA:")
	b, _ := e.Subscribe("+VNDB:")
	lines, err := e.Command(context.Background(), "AT+CSQ")
	if err != nil || !reflect.DeepEqual(lines, []string{"+CSQ: 20,99"}) {
		t.Fatalf("got %q, %v", lines, err)
	}
	for _, ch := range []<-chan at.URC{a, b} {
		select {
		case <-ch:
		case <-time.After(wait):
			t.Fatal("URC not delivered")
		}
	}
}

// TestSecretsRedacted: a PIN never shows in the trace or an error, even when
// the modem echoes it back.
func TestSecretsRedacted(t *testing.T) {
	const cmd = `AT+CPIN="4711"`
	fm := &fakeModem{answer: answers(map[string]string{cmd: cmd + "\r\r\n+CME ERROR: 16\r\n"})}
	var mu sync.Mutex
	var trace []string
	e := fm.start(t, at.Options{Timeout: wait, Trace: func(dir byte, line string) {
		mu.Lock()
		trace = append(trace, string(dir)+line)
		mu.Unlock()
	}})
	_, err := e.Command(context.Background(), cmd)
	var cme *at.CMEError
	if !errors.As(err, &cme) || cme.Code != 16 {
		t.Fatalf("got %v, want +CME ERROR: 16", err)
	}
	if strings.Contains(err.Error(), "4711") {
		t.Errorf("error shows the PIN: %q", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(trace) != 3 { // '>' command, '<' echo, '<' error
		t.Errorf("trace %q, want 3 lines", trace)
	}
	for _, l := range trace {
		if strings.Contains(l, "4711") {
			t.Errorf("trace shows the PIN: %q", l)
		}
	}
}

func TestInvalidCommand(t *testing.T) {
	fm := &fakeModem{answer: okAnswer}
	e := fm.start(t, at.Options{Timeout: wait})
	for _, cmd := range []string{"", "  ", "AT\rAT+CFUN=0", "AT\n"} {
		if _, err := e.Command(context.Background(), cmd); err == nil {
			t.Errorf("%q accepted", cmd)
		}
	}
	if _, err := e.Command(context.Background(), "AT"); err != nil {
		t.Fatal(err)
	}
	if c := fm.nextSeen(t); c != "AT" {
		t.Errorf("modem received %q, want only AT", c)
	}
}

// TestCommandTimeout: a per-call timeout replaces Options.Timeout, longer
// or shorter.
func TestCommandTimeout(t *testing.T) {
	release := make(chan struct{})
	fm := &fakeModem{
		answer: answers(map[string]string{"AT+COPS=?": "\r\n+COPS: (2,\"Test\",\"T\",\"00101\",7)\r\n\r\nOK\r\n"}),
		gates:  map[string]chan struct{}{"AT+COPS=?": release},
	}
	e := fm.start(t, at.Options{Timeout: 20 * time.Millisecond})
	go func() {
		time.Sleep(200 * time.Millisecond) // well past Options.Timeout
		close(release)
	}()
	lines, err := e.CommandTimeout(context.Background(), "AT+COPS=?", wait)
	if err != nil || len(lines) != 1 {
		t.Fatalf("long command: got %q, %v", lines, err)
	}

	fm2 := &fakeModem{answer: okAnswer, gates: map[string]chan struct{}{"AT+CGACT=1,1": make(chan struct{})}}
	e2 := fm2.start(t, at.Options{Timeout: wait})
	if _, err := e2.CommandTimeout(context.Background(), "AT+CGACT=1,1", 20*time.Millisecond); !errors.Is(err, at.ErrTimeout) {
		t.Fatalf("short command: got %v, want ErrTimeout", err)
	}
}
