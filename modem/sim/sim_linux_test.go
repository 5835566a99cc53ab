package sim_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/simproof/simproof/modem/sim"
)

// TestPTYAnswers runs one port through identity reads, framing, echo and
// +CMEE modes, in order, each answer byte-exact.
func TestPTYAnswers(t *testing.T) {
	m := sim.New(testIdentity())
	t.Cleanup(func() { m.Close() })
	link := filepath.Join(t.TempDir(), "ttySIM0")
	if err := m.ServePTY(link); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(link); err != nil || !strings.HasPrefix(target, "/dev/pts/") {
		t.Fatalf("link %s -> %q, %v; want a /dev/pts slave", link, target, err)
	}
	w := openSerial(t, link)
	tests := []struct {
		name string
		step
	}{
		{"echo on at first", step{"AT\r", "AT\r\r\nOK\r\n"}},
		{"ATE0 echoed, then off", step{"ATE0\r\n", "ATE0\r\r\nOK\r\n"}},
		{"LF terminated", step{"AT\n", ok()}},
		{"ATI", step{"ATI", ok("Quux QM1", "Revision: R1.2")}},
		{"+CGMI", step{"AT+CGMI", ok("Quux")}},
		{"+GMI", step{"AT+GMI", ok("Quux")}},
		{"+CGMM", step{"AT+CGMM", ok("QM1")}},
		{"+CGMR", step{"AT+CGMR", ok("R1.2")}},
		{"+GCAP", step{"AT+GCAP", ok("+GCAP: +CGSM,+DS,+ES")}},
		{"+CGSN", step{"AT+CGSN", ok("356938035643809")}},
		{"+CGSN=1", step{"AT+CGSN=1", ok(`+CGSN: "356938035643809"`)}},
		{"+GSN", step{"AT+GSN", ok("356938035643809")}},
		{"+CPIN?", step{"AT+CPIN?", ok("+CPIN: READY")}},
		{"+CCID", step{"AT+CCID", ok("+CCID: 8944110000000012345")}},
		{"+QCCID not by default", step{"AT+QCCID", cme(4)}},
		{"^ICCID not by default", step{"AT^ICCID?", cme(4)}},
		{"EF_ICCID swapped and F-padded", step{"AT+CRSM=176,12258,0,0,10", ok(`+CRSM: 144,0,"984411000000002143F5"`)}},
		{"EF_IMSI", step{"AT+CRSM=176,28423,0,0,9", ok(`+CRSM: 144,0,"080910101032547698"`)}},
		{"EF_AD", step{"AT+CRSM=176,28589,0,0,4", ok(`+CRSM: 144,0,"00000002"`)}},
		{"EF_SPN", step{"AT+CRSM=176,28486,0,0,17", ok(`+CRSM: 144,0,"01546573744E6574FFFFFFFFFFFFFFFFFF"`)}},
		{"EF absent", step{"AT+CRSM=176,28599,0,0,15", ok("+CRSM: 106,130")}},
		{"+CIMI", step{"AT+CIMI", ok("001010123456789")}},
		{"+CNUM", step{"AT+CNUM", ok(`+CNUM: "","+447700900123",145`)}},
		{"+CSQ", step{"AT+CSQ", ok("+CSQ: 20,99")}},
		{"+CESQ on LTE", step{"AT+CESQ", ok("+CESQ: 99,99,255,255,20,48")}},
		{"+CREG? mode 0", step{"AT+CREG?", ok("+CREG: 0,1")}},
		{"+CREG=2", step{"AT+CREG=2", ok()}},
		{"+CREG? mode 2", step{"AT+CREG?", ok(`+CREG: 2,1,"1A2B","01C3D4E",7`)}},
		{"+CEREG=1", step{"AT+CEREG=1", ok()}},
		{"+CEREG? mode 1", step{"AT+CEREG?", ok("+CEREG: 1,1")}},
		{"+COPS? long", step{"AT+COPS?", ok(`+COPS: 0,0,"Test Operator",7`)}},
		{"+COPS=3,2", step{"AT+COPS=3,2", ok()}},
		{"+COPS? numeric", step{"AT+COPS?", ok(`+COPS: 0,2,"00101",7`)}},
		{"+COPS=3,1", step{"AT+COPS=3,1", ok()}},
		{"+COPS? short", step{"AT+COPS?", ok(`+COPS: 0,1,"TestNet",7`)}},
		{"+CFUN?", step{"AT+CFUN?", ok("+CFUN: 1")}},
		{"+CLCK SC", step{`AT+CLCK="SC",2`, ok("+CLCK: 0")}},
		{"+WS46=?", step{"AT+WS46=?", ok("+WS46: (12,22,25,28,29,30,31)")}},
		{"+CSCS set and read", step{`AT+CSCS="UCS2";+CSCS?`, ok(`+CSCS: "UCS2"`)}},
		{"+CIND?", step{"AT+CIND?", ok("+CIND: 5,4,1,0,0,0,1,0")}},
		{"+IFC?", step{"AT+IFC?", ok("+IFC: 2,2")}},
		{"two commands, one line", step{"AT+CGMI;+CGMM", ok("Quux", "QM1")}},
		{"lower case", step{"at+cgmi", ok("Quux")}},
		{"noise before AT", step{"\xff\x00~AT+CGMI\r", ok("Quux")}},
		{"A/ repeats", step{"A/\r", ok("Quux")}},
		{"S register", step{"ATS3?", ok("013")}},
		{"unknown command at once", step{"AT*CNTI=2", cme(4)}},
		{"unknown vendor command", step{"AT$QCRMCALL=1,1", cme(4)}},
		{"not a command", step{"AT+CGMI=", cme(4)}},
		{"bad syntax", step{"AT+", "\r\nERROR\r\n"}},
		{"overlong line", step{"AT" + strings.Repeat("X", 2000), "\r\nERROR\r\n"}},
		{"+CMEE?", step{"AT+CMEE?", ok("+CMEE: 1")}},
		{"+CMEE=0", step{"AT+CMEE=0", ok()}},
		{"CMEE 0: plain ERROR", step{"AT+NOPE", "\r\nERROR\r\n"}},
		{"+CMEE=2", step{"AT+CMEE=2", ok()}},
		{"CMEE 2: text", step{"AT+NOPE", "\r\n+CME ERROR: operation not supported\r\n"}},
		{"+CMEE=1", step{"AT+CMEE=1", ok()}},
		{"CMEE 1: number", step{"AT+NOPE", cme(4)}},
		{"ATV0", step{"ATV0", "0\r"}},
		{"numeric framing", step{"AT+CGMI", "Quux\r\n0\r"}},
		{"numeric error", step{"ATX9", "4\r"}},
		{"ATV1", step{"ATV1", ok()}},
		{"ATE1 answered without echo", step{"ATE1", ok()}},
		{"echo back on", step{"AT", "AT\r\r\nOK\r\n"}},
		{"ATZ restores defaults", step{"ATE0Z", "ATE0Z\r\r\nOK\r\n"}},
		{"echo on after ATZ", step{"AT+CMEE?", "AT+CMEE?\r\r\n+CMEE: 1\r\n\r\nOK\r\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w.t = t
			if got := w.ask(tc.send); got != tc.want {
				t.Errorf("%q:\n got %q\nwant %q", tc.send, got, tc.want)
			}
		})
	}
}

// TestICCIDFallbackChain: which ICCID commands answer is configurable.
func TestICCIDFallbackChain(t *testing.T) {
	m, w, _ := newPTYModem(t, testIdentity())
	m.Disable("+CCID")
	m.Enable("^ICCID", "+QCCID", "+ICCID")
	run(t, w, []step{
		{"AT+CCID", cme(4)},
		{"AT^ICCID?", ok("^ICCID: 8944110000000012345")},
		{"AT+QCCID", ok("+QCCID: 8944110000000012345")},
		{"AT+ICCID", ok("+ICCID: 8944110000000012345")},
	})
}

// TestFaults: every fault knob gives its documented answer.
func TestFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults sim.Faults
		steps  []step
	}{
		{"no SIM", sim.Faults{NoSIM: true}, []step{
			{"AT+CPIN?", cme(10)},
			{"AT+CIMI", cme(10)},
			{"AT+CCID", cme(10)},
			{"AT+CRSM=176,12258,0,0,10", cme(10)},
			{"AT+CNUM", cme(10)},
			{"AT+CREG?", ok("+CREG: 0,0")},
			{"AT+COPS?", ok("+COPS: 0")},
			{"AT+CGACT=1,1", cme(10)},
			{"AT+CMEE=2;+CIMI", "\r\n+CME ERROR: SIM not inserted\r\n"},
		}},
		{"PIN required", sim.Faults{PINRequired: true}, []step{
			{"AT+CPIN?", ok("+CPIN: SIM PIN")},
			{"AT+CIMI", cme(11)},
			{"AT+CNUM", cme(11)},
			{"AT+CCID", ok("+CCID: 8944110000000012345")},
			{"AT+CRSM=176,12258,0,0,10", ok(`+CRSM: 144,0,"984411000000002143F5"`)},
			{"AT+CRSM=176,28423,0,0,9", ok("+CRSM: 105,130")},
			{`AT+CLCK="SC",2`, ok("+CLCK: 1")},
			{"AT+CREG?", ok("+CREG: 0,0")},
			{"AT+CGACT=1,1", cme(11)},
			{`AT+CPIN="0000"`, cme(16)},
			{`AT+CPIN="1234"`, ok()},
			{"AT+CPIN?", ok("+CPIN: READY")},
			{"AT+CIMI", ok("001010123456789")},
			{"AT+CREG?", ok("+CREG: 0,1")},
			{`AT+CPIN="1234"`, cme(3)},
		}},
		{"three wrong PINs block the SIM", sim.Faults{PINRequired: true}, []step{
			{`AT+CPIN="1111"`, cme(16)},
			{`AT+CPIN="2222"`, cme(16)},
			{"AT+CPIN?", ok("+CPIN: SIM PIN")},
			{`AT+CPIN="3333"`, cme(16)},
			{"AT+CPIN?", ok("+CPIN: SIM PUK")},
			{`AT+CPIN="1234"`, cme(16)},
			{`AT+CPIN="12345678","4321"`, ok()},
			{"AT+CPIN?", ok("+CPIN: READY")},
		}},
		{"PUK required", sim.Faults{PUKRequired: true}, []step{
			{"AT+CPIN?", ok("+CPIN: SIM PUK")},
			{"AT+CIMI", cme(12)},
			{"AT+CREG?", ok("+CREG: 0,0")},
		}},
		{"not registered", sim.Faults{NotRegistered: true}, []step{
			{"AT+CPIN?", ok("+CPIN: READY")},
			{"AT+CREG?", ok("+CREG: 0,2")},
			{"AT+CGREG?", ok("+CGREG: 0,2")},
			{"AT+CEREG=2;+CEREG?", ok("+CEREG: 2,2")},
			{"AT+COPS?", ok("+COPS: 0")},
			{"AT+CGATT?", ok("+CGATT: 0")},
			{"AT+CGACT=1,1", cme(30)},
			{"ATD*99***1#", cme(30)},
			{"AT+CIND?", ok("+CIND: 5,4,0,0,0,0,0,0")},
		}},
		{"denied", sim.Faults{Denied: true}, []step{
			{"AT+CREG?", ok("+CREG: 0,3")},
			{"AT+CEREG?", ok("+CEREG: 0,3")},
			{"AT+CGATT=1", cme(30)},
		}},
		{"garbage every 2nd answer", sim.Faults{GarbageEvery: 2}, []step{
			{"AT", ok()},
			{"AT", sim.Garbage + ok()},
			{"AT+CGMI", ok("Quux")},
			{"AT+CGMI", sim.Garbage + ok("Quux")},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, w, _ := newPTYModem(t, testIdentity())
			m.SetFaults(tc.faults)
			run(t, w, tc.steps)
		})
	}
}

// TestDelayFault: the answer comes, and not before the delay (a lower
// bound, which a loaded machine cannot break).
func TestDelayFault(t *testing.T) {
	m, w, _ := newPTYModem(t, testIdentity())
	const delay = 300 * time.Millisecond
	m.SetFaults(sim.Faults{Delay: delay})
	start := time.Now()
	if got := w.ask("AT+CGMI"); got != ok("Quux") {
		t.Fatalf("AT+CGMI = %q", got)
	}
	if el := time.Since(start); el < delay {
		t.Errorf("answered after %v, before the %v delay", el, delay)
	}
}

// TestSilentFault: a silent modem answers nothing, then recovers.
func TestSilentFault(t *testing.T) {
	m, w, _ := newPTYModem(t, testIdentity())
	m.SetFaults(sim.Faults{Silent: true})
	w.send("AT+CGMI\r")
	if got := w.quiet(300 * time.Millisecond); got != "" {
		t.Fatalf("silent modem said %q", got)
	}
	m.SetFaults(sim.Faults{})
	run(t, w, []step{{"AT+CGMI", ok("Quux")}})
}

// TestURCs: injected lines and state changes reach ports the way each
// asked for them.
func TestURCs(t *testing.T) {
	m, w, _ := newPTYModem(t, testIdentity())
	run(t, w, []step{
		{"AT+CREG=2;+CGREG=1;+CMER=3,0,0,1", ok()},
	})

	m.InjectURC("+CMTI: \"SM\",1")
	if got := w.until("\r\n+CMTI: \"SM\",1\r\n"); got != "\r\n+CMTI: \"SM\",1\r\n" {
		t.Errorf("URC = %q", got)
	}

	m.InjectGarbage([]byte("\x00\xffjunk"))
	if got := w.until("junk"); got != "\x00\xffjunk" {
		t.Errorf("garbage = %q", got)
	}

	m.SetRegistration(sim.RegRoaming)
	want := "\r\n+CREG: 5,\"1A2B\",\"01C3D4E\",7\r\n\r\n+CGREG: 5\r\n"
	if got := w.until(want); got != want {
		t.Errorf("registration URCs = %q, want %q", got, want)
	}

	m.SetFaults(sim.Faults{NotRegistered: true})
	want = "\r\n+CREG: 2\r\n\r\n+CGREG: 2\r\n"
	if got := w.until(want); got != want {
		t.Errorf("lost registration URCs = %q, want %q", got, want)
	}

	m.SetSignal(30)
	if got := w.until("\r\n+CIEV: 2,5\r\n"); got != "\r\n+CIEV: 2,5\r\n" {
		t.Errorf("signal URC = %q", got)
	}
	run(t, w, []step{{"AT+CSQ", ok("+CSQ: 30,99")}})

	// Our own command's URCs come after its answer.
	m.SetFaults(sim.Faults{})
	w.until("\r\n+CGREG: 5\r\n")
	if got := w.ask("AT+CFUN=4"); got != ok() {
		t.Errorf("AT+CFUN=4 = %q", got)
	}
	want = "\r\n+CREG: 0\r\n\r\n+CGREG: 0\r\n\r\n+CIEV: 2,0\r\n"
	if got := w.until(want); got != want {
		t.Errorf("radio-off URCs = %q, want %q", got, want)
	}
	run(t, w, []step{{"AT+CSQ", ok("+CSQ: 99,99")}})
}

// TestDataSession drives the generic 3GPP data commands, IPv4 and IPv6.
func TestDataSession(t *testing.T) {
	m, w, _ := newPTYModem(t, testIdentity())
	b := sim.DefaultBearer(0)
	b.IPv6 = netip.MustParsePrefix("2001:db8:64:1::2/64")
	b.DNS6 = []netip.Addr{netip.MustParseAddr("2001:db8:64:1::53")}
	m.SetBearer(b)
	v6dotted := "32.1.13.184.0.100.0.1.0.0.0.0.0.0.0.2"
	run(t, w, []step{
		{"AT+CGDCONT=?", ok(
			`+CGDCONT: (1-16),"IP",,,(0-2),(0-4)`,
			`+CGDCONT: (1-16),"IPV6",,,(0-2),(0-4)`,
			`+CGDCONT: (1-16),"IPV4V6",,,(0-2),(0-4)`)},
		{"AT+CGDCONT?", ok(`+CGDCONT: 1,"IP","internet","0.0.0.0",0,0`)},
		{`AT+CGDCONT=1,"IPV4V6","web.example"`, ok()},
		{`AT+CGDCONT=3,"IP","other"`, ok()},
		{"AT+CGDCONT?", ok(
			`+CGDCONT: 1,"IPV4V6","web.example","0.0.0.0",0,0`,
			`+CGDCONT: 3,"IP","other","0.0.0.0",0,0`)},
		{"AT+CGDCONT=3", ok()},
		{`AT+CGDCONT=2,"X25"`, cme(50)},
		{"AT+CGATT?", ok("+CGATT: 1")},
		{"AT+CGACT?", ok("+CGACT: 1,0")},
		{"AT+CGPADDR=1", ok(`+CGPADDR: 1,"0.0.0.0"`)},
		{"AT+CGCONTRDP=1", ok()},
		{"AT+CGACT=1,1", ok()},
		{"AT+CGACT?", ok("+CGACT: 1,1")},
		{"AT+CGACT=1,7", cme(50)},
		{"AT+CGPADDR=1", ok(`+CGPADDR: 1,"100.64.1.2","` + v6dotted + `"`)},
		{"AT+CGCONTRDP=1", ok(
			`+CGCONTRDP: 1,5,"web.example","100.64.1.2.255.255.255.0","100.64.1.1","100.64.1.53","100.64.1.54"`,
			`+CGCONTRDP: 1,5,"web.example","`+v6dotted+`.255.255.255.255.255.255.255.255.0.0.0.0.0.0.0.0","0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0","32.1.13.184.0.100.0.1.0.0.0.0.0.0.0.83","0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"`)},
		{"AT+CGPIAF=1,1,0,1", ok()},
		{"AT+CGCONTRDP", ok(
			`+CGCONTRDP: 1,5,"web.example","100.64.1.2.255.255.255.0","100.64.1.1","100.64.1.53","100.64.1.54"`,
			`+CGCONTRDP: 1,5,"web.example","2001:db8:64:1::2/64","::","2001:db8:64:1::53","::"`)},
		{"AT+CGPIAF=1,0,0,0", ok()},
		{"AT+CGPADDR", ok(`+CGPADDR: 1,"100.64.1.2","2001:DB8:64:1:0:0:0:2"`)},
		{"AT+CGEREP=2,0", ok()},
	})
	if c, ok := m.Context(1); !ok || !c.Active || c.APN != "web.example" || c.Type != "IPV4V6" {
		t.Fatalf("Context(1) = %+v, %v", c, ok)
	}

	// The network drops the context.
	if err := m.InjectNWDeact(1); err != nil {
		t.Fatal(err)
	}
	want := "\r\n+CGEV: NW DEACT \"IPV4V6\",\"100.64.1.2\",1\r\n"
	if got := w.until(want); got != want {
		t.Errorf("NW DEACT URC = %q", got)
	}
	if err := m.InjectNWDeact(1); !errors.Is(err, sim.ErrNotActive) {
		t.Errorf("second InjectNWDeact = %v, want ErrNotActive", err)
	}

	// A PPP call: CONNECT, +++ back to command mode, ATH, and a call the
	// network ends with NO CARRIER.
	run(t, w, []step{
		{"AT+CGACT?", ok("+CGACT: 1,0")},
		{"ATD*99***1#", "\r\nCONNECT 150000000\r\n"},
	})
	w.send("~\x7d\x23ppp frames AT+CGMI\r")
	if got := w.ask("+++"); got != ok() {
		t.Errorf("+++ = %q", got)
	}
	run(t, w, []step{
		{"AT+CGACT?", ok("+CGACT: 1,1")},
		{"ATO", "\r\nCONNECT 150000000\r\n"},
	})
	if err := m.InjectNWDeact(1); err != nil {
		t.Fatal(err)
	}
	if got := w.untilFinal(); got != "\r\nNO CARRIER\r\n" {
		t.Errorf("call dropped = %q", got)
	}
	// Back in command mode, the port hears the network's reason too.
	if got := w.until("\r\n" + `+CGEV: NW DEACT "IPV4V6","100.64.1.2",1` + "\r\n"); !strings.HasPrefix(got, "\r\n+CGEV") {
		t.Errorf("after NO CARRIER: %q", got)
	}
	run(t, w, []step{
		{"ATD*99#", "\r\nCONNECT 150000000\r\n"},
		{"+++", ok()},
		{"ATH", ok()},
		{"AT+CGACT?", ok("+CGACT: 1,0")},
		{"ATD+15551234567;", "\r\nNO CARRIER\r\n"},
		{"AT+CGACT=1;+CGATT=0;+CGACT?", ok("+CGACT: 1,0")},
	})
}

// TestUnplugReplug: the open port fails, the link goes, and both come back.
func TestUnplugReplug(t *testing.T) {
	m, w, link := newPTYModem(t, testIdentity())
	name := abstractName(t, "a")
	if err := m.ListenAbstract(name); err != nil {
		t.Fatal(err)
	}
	run(t, w, []step{{"AT+CGACT=1,1", ok()}})

	m.Unplug()
	var err error
	for i := 0; i < 50 && err == nil; i++ {
		_, err = w.read(100 * time.Millisecond)
	}
	if err == nil {
		t.Fatal("the open port still reads after Unplug")
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link after Unplug: %v, want gone", err)
	}
	if c, err := net.Dial("unix", "@"+name); err == nil {
		c.Close()
		t.Error("abstract socket still accepts after Unplug")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial after Unplug: %v, want connection refused", err)
	}

	if err := m.Plug(); err != nil {
		t.Fatal(err)
	}
	w2 := openSerial(t, link)
	// Power was lost: a new port session (echo on) and no context up.
	run(t, w2, []step{
		{"ATE0", "ATE0\r\r\nOK\r\n"},
		{"AT+CGACT?", ok("+CGACT: 1,0")},
	})
	a := dialAbstract(t, name)
	run(t, a, []step{{"AT+CGMI", "AT+CGMI\r\r\nQuux\r\n\r\nOK\r\n"}})
}

// TestAbstractSocket: ModemManager's abstract:NAME convention, the same
// dialogue, and one connection at a time.
func TestAbstractSocket(t *testing.T) {
	m := sim.New(testIdentity())
	t.Cleanup(func() { m.Close() })
	name := abstractName(t, "sim0")
	if err := m.ListenAbstract(name); err != nil {
		t.Fatal(err)
	}
	// /proc/net/unix shows the abstract address with '@' for the NUL; a
	// padded address would show trailing '@'s instead of ending here.
	proc, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(proc), "\n") {
		f := strings.Fields(line)
		found = found || len(f) > 0 && f[len(f)-1] == "@"+name
	}
	if !found {
		t.Fatalf("no listener @%s in /proc/net/unix", name)
	}

	w := dialAbstract(t, name)
	run(t, w, []step{
		{"ATE0\r\n", "ATE0\r\r\nOK\r\n"},
		{"AT+CGSN", ok("356938035643809")},
		{"AT+CRSM=176,12258,0,0,10", ok(`+CRSM: 144,0,"984411000000002143F5"`)},
		{"AT+CIMI", ok("001010123456789")},
		{"AT+CNUM", ok(`+CNUM: "","+447700900123",145`)},
		{"AT+FOO", cme(4)},
	})

	// A new connection replaces the old one and starts with echo on.
	w2 := dialAbstract(t, name)
	run(t, w2, []step{{"AT", "AT\r\r\nOK\r\n"}})
	var rerr error
	for i := 0; i < 50 && rerr == nil; i++ {
		_, rerr = w.read(100 * time.Millisecond)
	}
	if rerr == nil {
		t.Error("the replaced connection still reads")
	}
}

// TestSharedState: two ports on one modem see one state, as ModemManager's
// primary and data ports do.
func TestSharedState(t *testing.T) {
	m, tty, _ := newPTYModem(t, testIdentity())
	name := abstractName(t, "at0")
	if err := m.ListenAbstract(name); err != nil {
		t.Fatal(err)
	}
	at0 := dialAbstract(t, name)
	run(t, at0, []step{{"ATE0", "ATE0\r\r\nOK\r\n"}, {"AT+CGEREP=2", ok()}})
	run(t, tty, []step{
		{"AT+CMEE=0", ok()},
		{"ATD*99***1#", "\r\nCONNECT 150000000\r\n"},
	})
	run(t, at0, []step{
		{"AT+CGACT?", ok("+CGACT: 1,1")},
		{"AT+FOO", cme(4)}, // CMEE is per port
		{"AT+CGACT=0,1", ok()},
	})
	if got := tty.untilFinal(); got != "\r\nNO CARRIER\r\n" {
		t.Errorf("data port = %q, want NO CARRIER", got)
	}
	run(t, tty, []step{{"AT+CGACT?", ok("+CGACT: 1,0")}})
}

// TestCloseLeavesNoGoroutines: Close ends every goroutine the modem
// started, with ports open and a slow answer pending.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	m := sim.New(testIdentity())
	dir := t.TempDir()
	for _, l := range []string{"ttySIM0", "ttySIM1"} {
		if err := m.ServePTY(filepath.Join(dir, l)); err != nil {
			t.Fatal(err)
		}
	}
	name := abstractName(t, "x")
	if err := m.ListenAbstract(name); err != nil {
		t.Fatal(err)
	}
	w := dialAbstract(t, name)
	run(t, w, []step{{"AT", "AT\r\r\nOK\r\n"}})
	m.SetFaults(sim.Faults{Delay: time.Hour})
	w.send("AT\r")
	w.until("AT\r") // the echo: the command is now waiting out its delay
	m.Unplug()
	if err := m.Plug(); err != nil {
		t.Fatal(err)
	}
	m.Close()
	w.rw.Close()
	after := 0
	for i := 0; i < 100; i++ {
		if after = runtime.NumGoroutine(); after <= before {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	t.Fatalf("%d goroutines before, %d after Close:\n%s", before, after, buf[:runtime.Stack(buf, true)])
}

// TestServePTYRefusesFile: a link path holding a real file is not replaced.
func TestServePTYRefusesFile(t *testing.T) {
	m := sim.New(testIdentity())
	t.Cleanup(func() { m.Close() })
	p := filepath.Join(t.TempDir(), "ttySIM0")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.ServePTY(p); err == nil {
		t.Fatal("ServePTY replaced a regular file")
	}
	if m.Close(); m.ServePTY(p+"x") != sim.ErrClosed {
		t.Error("ServePTY after Close did not say ErrClosed")
	}
}
