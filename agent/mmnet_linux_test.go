package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/vishvananda/netns"

	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/internal/mmtest"
	"github.com/simproof/simproof/modem/sim"
	"github.com/simproof/simproof/netbind"
	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/emulator"
	"github.com/simproof/simproof/verify/idlayr"
)

// inNamedNS runs fn on a thread switched into the named network namespace
// (ip netns), so sockets it creates live there. The thread is switched back
// and reused, not discarded: a discarded thread takes with it any child
// started from it with Pdeathsig (the test harness's ModemManager and
// polkit stand-in), whichever goroutine started them.
func inNamedNS(t *testing.T, name string, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return // still locked: the thread is discarded, it never switched
		}
		defer orig.Close()
		target, err := netns.GetFromName(name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("switch back: %w", err) // stays locked: discarded
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestCheckThroughModemManagerBearer runs a whole IDlayr check through a
// bearer the real ModemManager brought up: a u-blox modem (the simulator's
// u-blox dialogue) whose net port is a veth, seen by ModemManager through a
// fake USB sysfs in its own mount namespace. ModemManager reports the
// bearer's interface and a static Ip4Config and leaves the link down with no
// address; netbind applies it, and the check's device step leaves through it.
func TestCheckThroughModemManagerBearer(t *testing.T) {
	mmtest.Require(t, "dbus-daemon", "ModemManager", "unshare")
	bus := mmtest.StartBus(t)
	s := sim.New(sim.DefaultIdentity(20))
	t.Cleanup(func() { s.Close() })
	if err := s.UseVendor("ublox"); err != nil {
		t.Fatal(err)
	}
	bearer := sim.DefaultBearer(0) // 100.64.1.2/24, gateway 100.64.1.1
	s.SetBearer(bearer)
	link := filepath.Join(t.TempDir(), "ttyACM0")
	if err := s.ServePTY(link); err != nil {
		t.Fatal(err)
	}
	nb := mmtest.StartNetBench(t, bus, mmtest.USBModem{TTY: link, VID: "1546", PID: "1102", Manufacturer: "u-blox",
		Product: "TOBY-L2", NetIf: "wwan0", CarrierAddr: bearer.Gateway4.String() + "/24"})

	// The provider and the operator answer on the carrier's side of the link.
	gw := bearer.Gateway4.String()
	emu, err := emulator.New(emulator.Config{IDlayrURL: "https://" + gw + ":443", OperatorURL: "http://" + gw + ":80",
		Subscribers: map[netip.Addr]string{bearer.IPv4.Addr(): "447700900020"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	inNamedNS(t, nb.Carrier, func() error {
		for _, r := range []struct {
			role emulator.Role
			addr string
			tls  bool
		}{{emulator.RoleIDlayr, gw + ":443", true}, {emulator.RoleOperator, gw + ":80", false}} {
			l, err := net.Listen("tcp", r.addr)
			if err != nil {
				return err
			}
			if err := emu.Serve(r.role, l, r.tls); err != nil {
				return err
			}
		}
		return nil
	})
	// Server-side calls come from the carrier side too (the customer's
	// backend is elsewhere; what matters is the device step).
	carrierDial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		var err error
		inNamedNS(t, nb.Carrier, func() error { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return nil })
		return c, err
	}
	server := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DialContext: carrierDial, TLSClientConfig: &tls.Config{RootCAs: emu.CertPool()}}}
	idp, err := idlayr.New(idlayr.Config{Credentials: idlayr.Credentials{ClientID: emulator.DefaultClientID,
		ClientSecret: emulator.DefaultClientSecret, DataResidency: "eu"}, BaseURL: "https://" + gw + ":443", HTTPClient: server,
		PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	mmb, err := newMMBackend(ctx, config.ModemManager{Enabled: true, Bus: bus.Address, EnableModems: true}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	nsPath := "/var/run/netns/" + nb.Device
	d := &Daemon{Config: cfg, Backends: map[string]RunningBackend{"modemmanager": mmb},
		Providers: map[string]verify.Provider{"idlayr": idp},
		Pinner: NewNetPinner(netbind.NewBinder(netbind.Options{NetNS: nsPath}), netbind.ManageAuto,
			netbind.ClientOptions{NetNS: nsPath, RootCAs: emu.CertPool()})}
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := ListenUnix(sock, 0o600, -1)
	if err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Serve(dctx, l); close(done) }()
	t.Cleanup(func() { dcancel(); <-done })
	b := &bench{t: t, client: unixClient(sock)}
	b.client.Timeout = 90 * time.Second
	id := s.Identity().IMEI
	// A guard, not seen needed since inNamedNS stopped discarding threads
	// (which killed the polkit stand-in and left ModemManager waiting): if
	// ModemManager has not exported the modem in 20 s, restart it once and
	// say so; simproof follows the restart through NameOwnerChanged.
	exported := func(wait time.Duration) bool {
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			var info map[string]any
			if b.do("GET", "/v1/modems/"+id, nil, &info) == 200 && info["state"] == "registered" {
				return true
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false
	}
	if !exported(20 * time.Second) {
		t.Logf("ModemManager did not probe the modem in 20 s; restarting it. Its log:\n%s", nb.Daemon.LogTail(8))
		nb.Daemon.Kill()
		nb.Daemon.Start()
		if !exported(60 * time.Second) {
			t.Fatalf("ModemManager never exported the modem as registered\nModemManager log:\n%s", nb.Daemon.LogTail(60))
		}
	}
	var deadline time.Time

	c, status := b.check(CheckRequest{Provider: "idlayr", PhoneNumber: "+447700900020", Modem: id})
	if status != 200 || c.Status != StatusCompleted || c.Result == nil || c.Result.Verified == nil || !*c.Result.Verified {
		t.Fatalf("check through ModemManager's bearer: %d %s %+v\nModemManager log:\n%s", status, c.Status, *c.Error, nb.Daemon.LogTail(40))
	}
	for _, h := range c.Trace {
		if h.Interface != "wwan0" || !strings.HasPrefix(h.LocalAddress, bearer.IPv4.Addr().String()+":") {
			t.Errorf("hop %s via %s from %s", h.URL, h.Interface, h.LocalAddress)
		}
	}
	for _, r := range emu.Requests() {
		if r.Role == emulator.RoleOperator && r.Source != bearer.IPv4.Addr() {
			t.Errorf("operator saw %s from %s", r.Path, r.Source)
		}
	}
	var m map[string]any
	b.do("GET", "/v1/modems/"+id, nil, &m)
	data := m["data"].(map[string]any)
	if data["connected"] != true || data["interface"] != "wwan0" {
		t.Errorf("modem data after the check: %v", data)
	}
	t.Logf("verified through ModemManager's bearer on %v in %d hops", data["interface"], len(c.Trace))

	// Unplugged mid-check (the kernel's remove events, as udev would report
	// them): the check fails with modem_gone, the daemon keeps serving.
	emu.SetFaults("+447700900020", emulator.Faults{SlowHop: 30 * time.Second})
	var started Check
	b.do("POST", "/v1/checks", CheckRequest{Provider: "idlayr", PhoneNumber: "+447700900020", Modem: id}, &started)
	deadline = time.Now().Add(20 * time.Second)
	for {
		var cur Check
		b.do("GET", "/v1/checks/"+started.ID, nil, &cur)
		if cur.Stage == "device" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reached the device step: %+v", cur)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, ev := range [][2]string{{"net", "wwan0"}, {"tty", "ttyACM0"}} {
		err := nb.Daemon.Conn().Object("org.freedesktop.ModemManager1", "/org/freedesktop/ModemManager1").Call(
			"org.freedesktop.ModemManager1.ReportKernelEvent", 0, map[string]dbus.Variant{
				"action": dbus.MakeVariant("remove"), "subsystem": dbus.MakeVariant(ev[0]), "name": dbus.MakeVariant(ev[1]),
			}).Err
		if err != nil {
			t.Fatalf("ReportKernelEvent remove %s: %v", ev[1], err)
		}
	}
	var gone Check
	b.do("GET", "/v1/checks/"+started.ID+"?wait=30s", nil, &gone)
	if gone.Status != StatusFailed || gone.Error == nil || gone.Error.Code != "modem_gone" {
		t.Fatalf("check during the unplug: %s %+v", gone.Status, gone.Error)
	}
	if st := b.do("GET", "/v1/modems/"+id, nil, nil); st != 404 {
		t.Errorf("unplugged modem still listed: %d", st)
	}
}
