package sim_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/simproof/simproof/modem/sim"
)

const mmService = "org.freedesktop.ModemManager1"

// findBinary looks in PATH and in the sbin directories PATH may lack.
func findBinary(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// privateBus starts a session dbus-daemon of the test's own and returns
// its address.
func privateBus(t *testing.T) string {
	t.Helper()
	bin := findBinary("dbus-daemon")
	if bin == "" {
		t.Skip("dbus-daemon not installed (apt-get install dbus)")
	}
	cmd := exec.Command(bin, "--session", "--nofork", "--nopidfile", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	t.Cleanup(func() { stopProcess(t, cmd) })
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a == "" {
			t.Fatal("dbus-daemon printed no address")
		}
		return a
	case <-time.After(answerWait):
		t.Fatal("dbus-daemon printed no address")
	}
	return ""
}

func stopProcess(t *testing.T, cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(answerWait):
		cmd.Process.Kill()
		<-done
	}
}

// eventually polls fn every 100 ms for at most d.
func eventually(t *testing.T, d time.Duration, what string, fn func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !fn(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

// modems lists the modem objects ModemManager exports.
func modems(conn *dbus.Conn) []dbus.ObjectPath {
	var objs map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	err := conn.Object(mmService, "/org/freedesktop/ModemManager1").
		Call("org.freedesktop.DBus.ObjectManager.GetManagedObjects", 0).Store(&objs)
	if err != nil {
		return nil
	}
	var out []dbus.ObjectPath
	for p, ifs := range objs {
		if _, ok := ifs[mmService+".Modem"]; ok {
			out = append(out, p)
		}
	}
	return out
}

func prop(t *testing.T, conn *dbus.Conn, path dbus.ObjectPath, iface, name string) dbus.Variant {
	t.Helper()
	v, err := conn.Object(mmService, path).GetProperty(iface + "." + name)
	if err != nil {
		t.Fatalf("%s %s.%s: %v", path, iface, name, err)
	}
	return v
}

// TestRealModemManager has Debian's ModemManager 1.20 probe, enable and
// connect the simulator over two abstract ports, on a private bus (see
// spec/testing.md), then unplugs and replugs the simulator (its transports
// close and come back) and shows what ModemManager makes of that.
func TestRealModemManager(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ModemManager; skipped with -short")
	}
	mmBin := findBinary("ModemManager")
	if mmBin == "" {
		t.Skip("ModemManager not installed (apt-get install modemmanager)")
	}
	addr := privateBus(t)

	id := sim.DefaultIdentity(3)
	m := sim.New(id)
	t.Cleanup(func() { m.Close() })
	var ports []string
	for _, p := range []string{"0", "1"} {
		name := abstractName(t, "mm"+p)
		if err := m.ListenAbstract(name); err != nil {
			t.Fatal(err)
		}
		ports = append(ports, name)
	}

	logPath := filepath.Join(t.TempDir(), "mm.log")
	mm := exec.Command(mmBin, "--test-session", "--test-no-udev", "--test-enable", "--debug", "--log-level=DEBUG", "--log-file="+logPath)
	mm.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+addr)
	if err := mm.Start(); err != nil {
		t.Fatalf("start ModemManager: %v", err)
	}
	t.Cleanup(func() {
		stopProcess(t, mm)
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("ModemManager log:\n%s", b)
			}
		}
	})

	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	eventually(t, 20*time.Second, "ModemManager on the bus", func() bool {
		var has bool
		err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, mmService).Store(&has)
		return err == nil && has
	})

	setProfile := func() {
		t.Helper()
		call := conn.Object(mmService, "/org/freedesktop/ModemManager1").
			Call(mmService+".Test.SetProfile", 0, "bench0", "generic", ports)
		if call.Err != nil {
			t.Fatalf("SetProfile: %v", call.Err)
		}
	}
	setProfile()
	var modem dbus.ObjectPath
	eventually(t, 30*time.Second, "modem exported", func() bool {
		ms := modems(conn)
		if len(ms) == 1 {
			modem = ms[0]
		}
		return modem != ""
	})
	eventually(t, 30*time.Second, "modem probed", func() bool {
		v, err := conn.Object(mmService, modem).GetProperty(mmService + ".Modem.EquipmentIdentifier")
		return err == nil && v.Value() == id.IMEI
	})
	simPath, _ := prop(t, conn, modem, mmService+".Modem", "Sim").Value().(dbus.ObjectPath)
	if got := prop(t, conn, simPath, mmService+".Sim", "SimIdentifier").Value(); got != id.ICCID {
		t.Errorf("SimIdentifier = %v, want %s", got, id.ICCID)
	}
	if got := prop(t, conn, simPath, mmService+".Sim", "Imsi").Value(); got != id.IMSI {
		t.Errorf("Imsi = %v, want %s", got, id.IMSI)
	}
	if got, _ := prop(t, conn, modem, mmService+".Modem", "OwnNumbers").Value().([]string); !slices.Contains(got, id.MSISDN) {
		t.Errorf("OwnNumbers = %v, want %s", got, id.MSISDN)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var bearer dbus.ObjectPath
	err = conn.Object(mmService, modem).CallWithContext(ctx, mmService+".Modem.Simple.Connect", 0,
		map[string]dbus.Variant{"apn": dbus.MakeVariant("internet")}).Store(&bearer)
	if err != nil {
		t.Fatalf("Simple.Connect: %v", err)
	}
	if got := prop(t, conn, bearer, mmService+".Bearer", "Connected").Value(); got != true {
		t.Errorf("bearer Connected = %v", got)
	}
	if c, _ := m.Context(1); !c.Active {
		t.Errorf("context 1 not active in the modem after Simple.Connect: %+v", c)
	}

	// Unplug. ModemManager logs "unexpected port hangup! forced to close
	// port" for the port it holds open, but a virtual modem stays exported
	// and connected: only Test.SetProfile made it, and nothing but
	// SetProfile replaces it (Manager.ReportKernelEvent cannot name a
	// virtual port: subsystem "unix" is refused, "tty" matches nothing).
	m.Unplug()
	if c, _ := m.Context(1); c.Active {
		t.Errorf("context 1 still active after Unplug: %+v", c)
	}
	if got := modems(conn); len(got) != 1 || got[0] != modem {
		t.Errorf("modems after Unplug = %v, want %v still there", got, modem)
	}

	// Replug: the sockets come back, and SetProfile with the same id
	// replaces the stale modem with a newly probed one.
	if err := m.Plug(); err != nil {
		t.Fatal(err)
	}
	setProfile()
	var again dbus.ObjectPath
	eventually(t, 30*time.Second, "modem replaced after Plug and SetProfile", func() bool {
		ms := modems(conn)
		if len(ms) == 1 && ms[0] != modem {
			again = ms[0]
		}
		return again != ""
	})
	eventually(t, 30*time.Second, "replugged modem probed", func() bool {
		v, err := conn.Object(mmService, again).GetProperty(mmService + ".Modem.EquipmentIdentifier")
		return err == nil && v.Value() == id.IMEI
	})
	err = conn.Object(mmService, again).CallWithContext(ctx, mmService+".Modem.Simple.Connect", 0,
		map[string]dbus.Variant{"apn": dbus.MakeVariant("internet")}).Store(&bearer)
	if err != nil {
		t.Fatalf("Simple.Connect after replug: %v", err)
	}
	if c, _ := m.Context(1); !c.Active {
		t.Errorf("context 1 not active after the second Simple.Connect: %+v", c)
	}
}
