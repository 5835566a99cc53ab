package sim_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simproof/simproof/modem/sim"
)

// exchange is one command ModemManager sent on a port and what the
// reference modem answered on that port before the port's next command.
type exchange struct {
	port, cmd, want string
}

var dialogueLine = regexp.MustCompile(`^\[(\w+)/at\] (-->|<--) '(.*)'$`)

func readDialogue(t *testing.T, path string) []exchange {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unescape := strings.NewReplacer("<CR>", "\r", "<LF>", "\n")
	var out []exchange
	last := map[string]int{} // port → index of its latest command
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := dialogueLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		port, dir, text := m[1], m[2], unescape.Replace(m[3])
		if dir == "-->" {
			out = append(out, exchange{port: port, cmd: text})
			last[port] = len(out) - 1
			continue
		}
		i, ok := last[port]
		if !ok {
			t.Fatalf("answer before any command on %s: %q", port, sc.Text())
		}
		out[i].want += text
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestModemManagerDialogue replays every command ModemManager 1.20 sent
// while probing, enabling and connecting a generic modem, over two
// abstract ports of one modem as ModemManager uses them. Each command must
// get a final result code at once, and with the reference modem's identity
// the answer must be the reference answer, byte for byte. ModemManager
// opens a port (again) before each ATE0 it sends first, so the replay does.
func TestModemManagerDialogue(t *testing.T) {
	exchanges := readDialogue(t, filepath.Join("testdata", "modemmanager-1.20-generic-at-dialogue.txt"))
	if len(exchanges) < 100 {
		t.Fatalf("only %d commands in the dialogue", len(exchanges))
	}
	m := sim.New(sim.Identity{
		Manufacturer: "SimVendor", Model: "SimModem LTE", Revision: "SIMFW_1.0.0",
		IMEI: "356938035643809", ICCID: "89014103211118510720", IMSI: "001010123456789",
		MSISDN: "+15551234567", OperatorID: "00101", OperatorName: "Test Operator", SPN: "TestNet",
		RSSI: 20, AcT: 7,
	})
	t.Cleanup(func() { m.Close() })
	names := map[string]string{}
	for _, p := range []string{"at0", "at1"} {
		names[p] = abstractName(t, p)
		if err := m.ListenAbstract(names[p]); err != nil {
			t.Fatal(err)
		}
	}
	ports := map[string]*wire{}
	for i, x := range exchanges {
		w := ports[x.port]
		if w == nil || x.cmd == "ATE0\r\n" {
			if w != nil {
				w.rw.Close()
			}
			w = dialAbstract(t, names[x.port])
			ports[x.port] = w
		}
		got := w.ask(x.cmd)
		if !isFinal(lastLine(got)) {
			t.Fatalf("#%d %s %q: no final result code in %q", i, x.port, x.cmd, got)
		}
		if got != x.want {
			t.Errorf("#%d %s %q:\n got %q\nwant %q", i, x.port, x.cmd, got, x.want)
		}
	}
}

func lastLine(s string) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' })
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

// syncBuffer is a bytes.Buffer Main can write while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMain runs `simproof sim` with two modems and talks to both.
func TestMainCommand(t *testing.T) {
	dir := t.TempDir()
	abs := abstractName(t, "%d")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- sim.Main(ctx, []string{"--count", "2", "--dir", dir, "--abstract", abs, "--signal", "25", "--fault", "pin"}, &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(answerWait):
			t.Error("Main did not return after cancel")
		}
	})
	for i := 0; !strings.Contains(out.String(), "ready:"); i++ {
		if i == 100 {
			t.Fatalf("Main not ready; stdout %q stderr %q", out.String(), errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "sim0 "+filepath.Join(dir, "ttySIM0")+" "+strings.ReplaceAll(abs, "%d", "0")+" imei=") {
		t.Fatalf("stdout = %q", out.String())
	}
	id1 := sim.DefaultIdentity(1)
	if !strings.Contains(lines[1], "imei="+id1.IMEI) || !strings.Contains(lines[1], "msisdn="+id1.MSISDN) {
		t.Errorf("modem 1 line %q lacks its identity", lines[1])
	}
	w := openSerial(t, filepath.Join(dir, "ttySIM1"))
	run(t, w, []step{
		{"ATE0", "ATE0\r\r\nOK\r\n"},
		{"AT+CGSN", ok(id1.IMEI)},
		{"AT+CSQ", ok("+CSQ: 25,99")},
		{"AT+CPIN?", ok("+CPIN: SIM PIN")},
	})
	a := dialAbstract(t, strings.ReplaceAll(abs, "%d", "0"))
	run(t, a, []step{{"ATE0", "ATE0\r\r\nOK\r\n"}, {"AT+CGSN", ok(sim.DefaultIdentity(0).IMEI)}})

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("Main = %d after cancel, want 0; stderr %q", code, errOut.String())
		}
	case <-time.After(answerWait):
		t.Fatal("Main did not return after cancel")
	}
	done <- 0 // for the cleanup
	if _, err := os.Lstat(filepath.Join(dir, "ttySIM0")); !os.IsNotExist(err) {
		t.Errorf("link left after Main returned: %v", err)
	}
}

func TestMainUsage(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"--count", "0"}, 2},
		{[]string{"--count", "2", "--imei", "356938035643809"}, 2},
		{[]string{"--imei", "12"}, 2},
		{[]string{"--msisdn", "447700900123"}, 2},
		{[]string{"--fault", "melted"}, 2},
		{[]string{"--fault", "slow=soon"}, 2},
		{[]string{"--signal", "40"}, 2},
		{[]string{"extra"}, 2},
		{[]string{"-h"}, 0},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if got := sim.Main(context.Background(), tc.args, &out, &errOut); got != tc.want {
				t.Errorf("Main(%q) = %d, want %d; stderr %q", tc.args, got, tc.want, errOut.String())
			}
		})
	}
}
