// Package mmtest runs the real ModemManager for tests: a private
// dbus-daemon, ModemManager in test mode on it (--test-session
// --test-no-udev --test-enable), and Test.SetProfile to hand it a simulated
// modem's abstract socket. Every process it starts is bounded in time and
// killed in t.Cleanup; ModemManager's --debug log is kept in a file under
// t.TempDir() and printed, tail first, when the test fails.
//
// Tests skip, saying why, when dbus-daemon or ModemManager is not installed
// (apt-get install dbus modemmanager).
package mmtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// Service is ModemManager's bus name.
const Service = "org.freedesktop.ModemManager1"

// StartTimeout bounds how long a started daemon may take to be ready.
var StartTimeout = 30 * time.Second

// Require skips t unless the named programs are installed.
func Require(t testing.TB, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := lookPath(p); err != nil {
			t.Skipf("%s is not installed (apt-get install dbus modemmanager): %v", p, err)
		}
	}
}

// lookPath also finds the sbin programs a non-login PATH lacks.
func lookPath(p string) (string, error) {
	if path, err := exec.LookPath(p); err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		path := filepath.Join(dir, p)
		if fi, err := os.Stat(path); err == nil && fi.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or /usr/sbin", p)
}

// Bus is a private message bus for one test.
type Bus struct {
	// Address is the bus's unix:path= address, without a guid, so it
	// stays valid across Stop and Start.
	Address string
	t       testing.TB
	conf    string
	cmd     *exec.Cmd
}

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// StartBus starts a non-forking dbus-daemon with a generated config,
// listening on a socket of its own; it is killed when the test ends.
func StartBus(t testing.TB) *Bus {
	t.Helper()
	Require(t, "dbus-daemon")
	// A short directory: sun_path holds 108 bytes, and test names are long.
	dir, err := os.MkdirTemp("", "mmbus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "bus")
	b := &Bus{t: t, conf: filepath.Join(dir, "bus.conf"), Address: "unix:path=" + sock}
	if err := os.WriteFile(b.conf, fmt.Appendf(nil, busConfig, sock), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	b.Start()
	return b
}

// Start (re)starts the daemon on the same socket; it returns once the
// daemon printed its address, i.e. listens.
func (b *Bus) Start() {
	b.t.Helper()
	if b.cmd != nil {
		b.t.Fatal("mmtest: bus already running")
	}
	path, _ := lookPath("dbus-daemon")
	cmd := exec.Command(path, "--config-file="+b.conf, "--nofork", "--nopidfile", "--print-address=1")
	cmd.SysProcAttr = childAttr()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("start dbus-daemon: %v", err)
	}
	b.cmd = cmd
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		s, _ := r.ReadString('\n')
		line <- strings.TrimSpace(s)
		_, _ = r.WriteTo(discard{})
	}()
	select {
	case addr := <-line:
		if addr == "" {
			b.t.Fatalf("dbus-daemon printed no address: %s", stderr.String())
		}
	case <-time.After(StartTimeout):
		b.t.Fatalf("dbus-daemon printed no address in %v: %s", StartTimeout, stderr.String())
	}
}

// Stop ends the daemon: every connection to it breaks.
func (b *Bus) Stop() {
	if b.cmd != nil {
		stop(b.cmd, 5*time.Second)
		b.cmd = nil
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Conn opens a private connection to the bus, closed when the test ends.
func (b *Bus) Conn(t testing.TB) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(b.Address)
	if err != nil {
		t.Fatalf("connect to test bus: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Daemon is one ModemManager process on a test bus.
type Daemon struct {
	Bus *Bus
	// Log is the file ModemManager's --debug output goes to.
	Log  string
	Args []string
	t    testing.TB
	cmd  *exec.Cmd
	conn *dbus.Conn
	done chan struct{}
	// nameCh receives NameOwnerChanged while watchName is active.
	nameCh chan *dbus.Signal
	// Cmd lets a caller wrap the command (e.g. run it in namespaces) before
	// it starts; nil runs ModemManager directly.
	Cmd func(*exec.Cmd)
}

// DefaultArgs run ModemManager on the session bus given to it, without udev,
// with the Test interface and logging every AT command.
var DefaultArgs = []string{"--test-session", "--test-no-udev", "--test-enable", "--debug"}

// StartModemManager starts ModemManager on bus with DefaultArgs plus extra
// and waits until it owns its bus name.
func StartModemManager(t testing.TB, bus *Bus, extra ...string) *Daemon {
	t.Helper()
	d := NewDaemon(t, bus, extra...)
	d.Start()
	return d
}

// NewDaemon prepares a ModemManager without starting it.
func NewDaemon(t testing.TB, bus *Bus, extra ...string) *Daemon {
	t.Helper()
	Require(t, "ModemManager")
	d := &Daemon{Bus: bus, t: t, Args: append(append([]string{}, DefaultArgs...), extra...),
		Log: filepath.Join(t.TempDir(), "ModemManager.log")}
	d.conn = bus.Conn(t)
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("ModemManager log %s, last lines:\n%s", d.Log, d.LogTail(60))
		}
	})
	return d
}

// Start starts (or, after Stop or Kill, restarts) the daemon and waits until
// it owns org.freedesktop.ModemManager1.
func (d *Daemon) Start() {
	d.t.Helper()
	if d.cmd != nil {
		d.t.Fatal("mmtest: ModemManager already running")
	}
	if !d.conn.Connected() { // the bus was restarted
		d.conn = d.Bus.Conn(d.t)
	}
	path, _ := lookPath("ModemManager")
	logf, err := os.OpenFile(d.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== mmtest: starting %s %s\n", path, strings.Join(d.Args, " "))
	cmd := exec.Command(path, d.Args...)
	// The test bus is its system bus too: polkit (python-dbusmock's
	// stand-in, see StartPolkit) is looked up there, and nothing reaches
	// the host's system bus.
	cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+d.Bus.Address, "DBUS_SYSTEM_BUS_ADDRESS="+d.Bus.Address)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if d.Cmd != nil {
		d.Cmd(cmd)
	}
	// Watch the name before starting, so the acquisition cannot be missed.
	defer d.watchName()()
	ch := d.nameCh
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("start ModemManager: %v", err)
	}
	d.cmd, d.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(d.done)
	deadline := time.After(StartTimeout)
	for !d.Running() {
		select {
		case <-ch:
		case <-d.done:
			d.cmd = nil
			d.t.Fatalf("ModemManager exited at start: %s", d.LogTail(20))
		case <-deadline:
			d.t.Fatalf("ModemManager did not take its bus name in %v: %s", StartTimeout, d.LogTail(20))
		}
	}
}

// Running reports whether someone owns ModemManager's name on the bus.
func (d *Daemon) Running() bool {
	var owner string
	err := d.conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, Service).Store(&owner)
	return err == nil && owner != ""
}

// Kill ends ModemManager at once (SIGKILL), as a crash would, and waits for
// it to be gone from the bus.
func (d *Daemon) Kill() { d.signal(syscall.SIGKILL) }

// Stop ends ModemManager with SIGTERM (SIGKILL after 5 s).
func (d *Daemon) Stop() { d.signal(syscall.SIGTERM) }

func (d *Daemon) signal(sig syscall.Signal) {
	if d.cmd == nil {
		return
	}
	unwatch := d.watchName()
	defer unwatch()
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	d.cmd = nil
	// The bus notices the closed connection on its own time.
	d.waitName(false, 5*time.Second)
}

// watchName subscribes to NameOwnerChanged for ModemManager's name, so
// waitName cannot miss a change; call the returned func when done.
func (d *Daemon) watchName() func() {
	if !d.conn.Connected() {
		return func() {}
	}
	d.nameCh = make(chan *dbus.Signal, 16)
	d.conn.Signal(d.nameCh)
	match := []dbus.MatchOption{dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, Service)}
	_ = d.conn.AddMatchSignal(match...)
	return func() {
		_ = d.conn.RemoveMatchSignal(match...)
		d.conn.RemoveSignal(d.nameCh)
		d.nameCh = nil
	}
}

// waitName waits, bounded, until the name is owned (or not).
func (d *Daemon) waitName(owned bool, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for d.conn.Connected() && d.Running() != owned {
		select {
		case <-d.nameCh:
		case <-deadline:
			return false
		}
	}
	return true
}

// SetProfile calls Test.SetProfile: ModemManager creates a virtual device
// named id with the plugin and ports (e.g. "abstract:sim0") and probes it.
// Calling it again with the same id replaces the device: the old modem is
// removed, and a new one appears if the ports answer.
func (d *Daemon) SetProfile(ctx context.Context, id, plugin string, ports ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := d.conn.Object(Service, "/org/freedesktop/ModemManager1").CallWithContext(ctx,
		Service+".Test.SetProfile", 0, id, plugin, ports).Err
	if err != nil {
		return fmt.Errorf("Test.SetProfile(%s, %s, %v): %w", id, plugin, ports, err)
	}
	return nil
}

// PID is the running daemon's process id (0 when it is not running).
func (d *Daemon) PID() int {
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Conn is the harness's own connection to the bus.
func (d *Daemon) Conn() *dbus.Conn { return d.conn }

// LogTail returns the last n lines of ModemManager's log.
func (d *Daemon) LogTail(n int) string {
	b, err := os.ReadFile(d.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogContains reports whether ModemManager's log has a line containing s.
func (d *Daemon) LogContains(s string) bool {
	b, _ := os.ReadFile(d.Log)
	return bytes.Contains(b, []byte(s))
}

func stop(cmd *exec.Cmd, grace time.Duration) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// StartPolkit runs python-dbusmock's polkitd template on bus, allowing
// every action, so ModemManager's polkit-guarded calls (ReportKernelEvent,
// InhibitDevice) work; it must run before ModemManager starts, which looks
// for the authority once. Skips when python3-dbusmock is not installed.
func StartPolkit(t testing.TB, bus *Bus) {
	t.Helper()
	py := "/usr/bin/python3" // Debian's python3-dbusmock belongs to Debian's python
	if err := exec.Command(py, "-c", "import dbusmock").Run(); err != nil {
		t.Skipf("python3-dbusmock is not installed (apt-get install python3-dbusmock): %v", err)
	}
	conn := bus.Conn(t)
	ch := make(chan *dbus.Signal, 16)
	conn.Signal(ch)
	defer conn.RemoveSignal(ch)
	const name = "org.freedesktop.PolicyKit1"
	match := []dbus.MatchOption{dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, name)}
	if err := conn.AddMatchSignal(match...); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-m", "dbusmock", "--template", "polkitd")
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start polkitd stand-in: %v", err)
	}
	t.Cleanup(func() { stop(cmd, 5*time.Second) })
	deadline := time.After(StartTimeout)
	for {
		var owner string
		if conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, name).Store(&owner) == nil && owner != "" {
			break
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("polkitd stand-in not on the bus in %v: %s", StartTimeout, out.String())
		}
	}
	if err := conn.Object(name, "/org/freedesktop/PolicyKit1/Authority").Call(
		"org.freedesktop.DBus.Mock.AllowUnknown", 0, true).Err; err != nil {
		t.Fatalf("polkitd stand-in AllowUnknown: %v", err)
	}
}
