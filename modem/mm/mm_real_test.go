package mm_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/modem/mm"
	"github.com/simproof/simproof/modem/sim"
)

// Tests in this file drive the real ModemManager (Debian's 1.20) through a
// private bus, with modem/sim simulators on abstract sockets handed to it by
// Test.SetProfile with the generic plugin. They skip when ModemManager or
// dbus-daemon is not installed.

// TestEnumerate: four modems in one daemon, probed in parallel; every field
// the API shows about identity equals the simulator's.
func TestEnumerate(t *testing.T) {
	t.Parallel()
	b := newBench(t, 4)
	be := b.backend(mm.Options{})
	ev := collect(t, be)
	start := time.Now()
	b.profileAll()
	for i, s := range b.sims {
		id := s.Identity()
		got := ev.wait(t, 0, probeTimeout, "Added for "+id.IMEI, kindFor(modem.Added, id.IMEI)).Info
		_ = i
		// The SIM's home operator comes from EF_AD/EF_SPN, read after the
		// modem is exported; wait for the Info that has it.
		got = waitInfo(t, be, ev, id.IMEI, probeTimeout, "SIM operator", func(in modem.Info) bool {
			return in.SIM.OperatorID != "" && in.SIM.OperatorName != ""
		})
		want := modem.Info{
			ID: id.IMEI, IMEI: id.IMEI, Backend: "modemmanager",
			Manufacturer: id.Manufacturer, Model: id.Model, Revision: id.Revision,
		}
		if got.ID != want.ID || got.IMEI != want.IMEI || got.Backend != want.Backend ||
			got.Manufacturer != want.Manufacturer || got.Model != want.Model || got.Revision != want.Revision {
			t.Errorf("modem %d: got %+v, want identity %+v", i, got, want)
		}
		if got.SIM.ICCID != id.ICCID || got.SIM.IMSI != id.IMSI {
			t.Errorf("modem %d: sim %+v, want iccid %s imsi %s", i, got.SIM, id.ICCID, id.IMSI)
		}
		if len(got.SIM.OwnNumbers) != 1 || got.SIM.OwnNumbers[0] != id.MSISDN {
			t.Errorf("modem %d: own numbers %q, want [%s]", i, got.SIM.OwnNumbers, id.MSISDN)
		}
		if got.SIM.OperatorID != id.OperatorID || got.SIM.OperatorName != id.SPN {
			t.Errorf("modem %d: sim operator %q %q, want %q %q", i, got.SIM.OperatorID, got.SIM.OperatorName, id.OperatorID, id.SPN)
		}
		if got.SIM.State != "ready" {
			t.Errorf("modem %d: sim state %q, want ready", i, got.SIM.State)
		}
	}
	t.Logf("four modems probed and listed in %v", time.Since(start).Round(time.Millisecond))
	if n := len(be.List()); n != 4 {
		t.Errorf("List has %d modems, want 4", n)
	}

	// Enabling makes ModemManager register: the serving network and the
	// access technology come from the simulator's +COPS and <AcT> 7 (lte).
	id := b.sims[0].Identity()
	enable(t, b, be, id.IMEI)
	got := waitInfo(t, be, ev, id.IMEI, probeTimeout, "registration", func(in modem.Info) bool {
		return in.Registration == "home" && in.Network.OperatorName != "" && in.SignalQuality != nil && *in.SignalQuality > 0
	})
	if got.Network.OperatorID != id.OperatorID || got.Network.OperatorName != id.OperatorName {
		t.Errorf("network %+v, want %s %s", got.Network, id.OperatorID, id.OperatorName)
	}
	if got.State != "registered" {
		t.Errorf("state %q, want registered", got.State)
	}
	// ModemManager takes the quality from the +CIND "signal" indicator
	// (bars × 20) when the modem has one, not from +CSQ: the same modem
	// shows 80 here and rssi×100/31 = 64 under the AT backend.
	if q := *got.SignalQuality; q <= 0 || q > 100 || q%20 != 0 {
		t.Errorf("signal quality %d, want bars×20 from +CIND", q)
	}
	if got.AccessTechnology != "lte" {
		t.Errorf("access technology %q, want lte", got.AccessTechnology)
	}
}

// enable uses a backend with EnableModems on the same daemon.
func enable(t *testing.T, b *bench, be *mm.Backend, id string) {
	t.Helper()
	conn := b.mm.Conn()
	path := pathOf(t, b, id)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Object("org.freedesktop.ModemManager1", path).CallWithContext(ctx,
		"org.freedesktop.ModemManager1.Modem.Enable", 0, true).Err; err != nil {
		t.Fatalf("enable %s: %v", id, err)
	}
}

var _ = errors.Is
var _ = sim.DefaultIdentity

// TestUnplugReplug: how a simulated modem leaves ModemManager and comes
// back, and what the backend shows.
//
// What ModemManager 1.20 does (seen here, and in src/mm-device.c): a
// Test.SetProfile device is "virtual", and nothing but another SetProfile
// removes it. When the simulator closes its socket (sim.Unplug), ModemManager
// logs "unexpected port hangup", force-closes the port and keeps exporting
// the modem (every later command fails); a kernel "remove" event does not
// reach a virtual device either. So the test unplugs the way udev would
// tell ModemManager: sim.Unplug, then SetProfile with the same id and port.
// ModemManager drops the old modem (InterfacesRemoved), cannot open the
// port (connection refused) and exports nothing. Replug is sim.Plug and
// SetProfile again: a new object (Modem/N+1) with the same IMEI.
func TestUnplugReplug(t *testing.T) {
	t.Parallel()
	b := newBench(t, 1)
	be := b.backend(mm.Options{EnableModems: true})
	ev := collect(t, be)
	id := b.sims[0].Identity().IMEI
	b.profile(0)
	ev.wait(t, 0, probeTimeout, "Added", kindFor(modem.Added, id))
	// Enabled, ModemManager keeps the port open, as with a modem in use.
	waitInfo(t, be, ev, id, probeTimeout, "registered", func(in modem.Info) bool { return in.State == "registered" })
	m, _ := be.Get(id)
	oldPath := pathOf(t, b, id)

	mark := ev.mark()
	start := time.Now()
	b.sims[0].Unplug()
	b.profile(0)
	gone := ev.wait(t, mark, probeTimeout, "Removed", kindFor(modem.Removed, id))
	t.Logf("unplugged: Removed after %v", time.Since(start).Round(time.Millisecond))
	if gone.Info.ID != id || gone.Info.SIM.ICCID == "" {
		t.Errorf("Removed carries %+v, want the modem as it was", gone.Info)
	}
	if _, ok := be.Get(id); ok {
		t.Errorf("modem %s still listed after unplug", id)
	}
	if _, err := m.Connect(context.Background(), modem.ConnectParams{APN: "internet"}); !errors.Is(err, modem.ErrGone) {
		t.Errorf("Connect on an unplugged modem: %v, want ErrGone", err)
	}
	if got := m.Info(); got.ID != id {
		t.Errorf("Info of a gone modem: %+v, want its last state", got)
	}

	mark = ev.mark()
	start = time.Now()
	if err := b.sims[0].Plug(); err != nil {
		t.Fatal(err)
	}
	b.profile(0)
	back := ev.wait(t, mark, probeTimeout, "Added after replug", kindFor(modem.Added, id))
	t.Logf("replugged: Added after %v", time.Since(start).Round(time.Millisecond))
	if back.Info.SIM.ICCID != b.sims[0].Identity().ICCID {
		t.Errorf("replugged modem %+v", back.Info)
	}
	if p := pathOf(t, b, id); p == oldPath {
		t.Errorf("replugged modem kept object %s; expected a new one", p)
	}
	// The old handle follows the id to the new object.
	waitInfo(t, be, ev, id, probeTimeout, "registered again", func(in modem.Info) bool { return in.State == "registered" })
	if got := m.Info(); got.State != "registered" {
		t.Errorf("old handle after replug: state %q, want registered", got.State)
	}
}

// TestModemManagerRestart: ModemManager killed (SIGKILL, as a crash) and
// started again on the same bus. The backend drops every modem on
// NameOwnerChanged and reads the new daemon's objects, with no restart of
// its own. The new daemon knows no test profiles: they are set again, as
// udev's coldplug would re-announce real ports.
func TestModemManagerRestart(t *testing.T) {
	t.Parallel()
	b := newBench(t, 2)
	be := b.backend(mm.Options{})
	ev := collect(t, be)
	b.profileAll()
	ids := []string{b.sims[0].Identity().IMEI, b.sims[1].Identity().IMEI}
	for _, id := range ids {
		ev.wait(t, 0, probeTimeout, "Added "+id, kindFor(modem.Added, id))
	}

	mark := ev.mark()
	b.mm.Kill()
	for _, id := range ids {
		ev.wait(t, mark, probeTimeout, "Removed "+id, kindFor(modem.Removed, id))
	}
	if n := len(be.List()); n != 0 {
		t.Errorf("%d modems listed with ModemManager dead", n)
	}

	mark = ev.mark()
	start := time.Now()
	b.mm.Start()
	b.profileAll()
	for _, id := range ids {
		got := ev.wait(t, mark, probeTimeout, "Added after restart "+id, kindFor(modem.Added, id))
		if got.Info.SIM.IMSI == "" {
			t.Errorf("modem %s after restart: %+v", id, got.Info)
		}
	}
	t.Logf("back after restart in %v", time.Since(start).Round(time.Millisecond))
	if n := len(be.List()); n != 2 {
		t.Errorf("%d modems listed after restart, want 2", n)
	}
}

// TestConnectGenericPPP: with the generic plugin, ModemManager's only data
// path is PPP on the AT port (ATD*99***1#, Ip4Config method ppp, Interface
// the port). simproof cannot use that: Connect says unsupported_bearer and
// takes down the bearer it made.
func TestConnectGenericPPP(t *testing.T) {
	t.Parallel()
	b := newBench(t, 1)
	be := b.backend(mm.Options{})
	ev := collect(t, be)
	id := b.sims[0].Identity().IMEI
	b.profile(0)
	ev.wait(t, 0, probeTimeout, "Added", kindFor(modem.Added, id))
	m, _ := be.Get(id)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	d, err := m.Connect(ctx, modem.ConnectParams{APN: "internet", IPType: "ipv4"})
	t.Logf("Connect after %v: %+v, %v", time.Since(start).Round(time.Millisecond), d, err)
	if !errors.Is(err, modem.ErrUnsupported) {
		t.Fatalf("Connect: %v, want unsupported_bearer", err)
	}
	if d.IPv4 == nil || d.IPv4.Method != "ppp" || d.Interface != b.port(0) {
		t.Errorf("DataInfo %+v: want ipv4 method ppp on %s", d, b.port(0))
	}
	// The bearer simproof made is disconnected and deleted.
	waitInfo(t, be, ev, id, probeTimeout, "bearer gone", func(in modem.Info) bool { return !in.Data.Connected })
	var bearers []dbus.ObjectPath
	if err := b.mm.Conn().Object("org.freedesktop.ModemManager1", pathOf(t, b, id)).
		Call("org.freedesktop.ModemManager1.Modem.ListBearers", 0).Store(&bearers); err != nil {
		t.Fatal(err)
	}
	if len(bearers) != 0 {
		t.Errorf("bearers left behind: %v", bearers)
	}
}

// TestStateErrors: SIM and registration trouble, as the simulator's faults
// make ModemManager see it, reaches Info and Connect as ModemManager words
// it. Three modems in one daemon.
func TestStateErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		faults    sim.Faults
		state     string // Info.State once probed
		reason    string // Info.StateReason
		simState  string
		err       error // Connect's sentinel
		errReason string
	}{
		{"no SIM", sim.Faults{NoSIM: true}, "failed", "sim-missing", "missing", modem.ErrSIMMissing, "sim-missing"},
		{"PIN", sim.Faults{PINRequired: true}, "locked", "sim-pin", "pin-required", modem.ErrSIMLocked, "sim-pin"},
		{"not registered", sim.Faults{NotRegistered: true}, "disabled", "", "ready", modem.ErrNotRegistered, "registration "},
	}
	b := newBench(t, len(cases))
	be := b.backend(mm.Options{})
	ev := collect(t, be)
	for i, c := range cases {
		b.sims[i].SetFaults(c.faults)
		b.profile(i)
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := b.sims[i].Identity().IMEI
			info := waitInfo(t, be, ev, id, probeTimeout, "state "+c.state, func(in modem.Info) bool { return in.State == c.state })
			if info.StateReason != c.reason || info.SIM.State != c.simState {
				t.Errorf("state_reason %q sim.state %q, want %q %q", info.StateReason, info.SIM.State, c.reason, c.simState)
			}
			m, _ := be.Get(id)
			// ModemManager's Simple.Connect waits for registration far
			// longer than a check would; the caller's deadline ends it and
			// the error says why.
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			defer cancel()
			_, err := m.Connect(ctx, modem.ConnectParams{APN: "internet"})
			var se *modem.StateError
			if !errors.As(err, &se) || !errors.Is(err, c.err) || !strings.Contains(se.Reason, c.errReason) {
				t.Fatalf("Connect: %v, want a StateError %v with %q", err, c.err, c.errReason)
			}
			t.Logf("Connect: %v", err)
		})
	}
}

// TestGoneDuringConnect: the modem is unplugged while Simple.Connect runs
// (the simulator answers slowly, so the connect is still in ModemManager
// when SetProfile replaces the device). Connect ends with modem_gone.
func TestGoneDuringConnect(t *testing.T) {
	t.Parallel()
	b := newBench(t, 1)
	be := b.backend(mm.Options{})
	ev := collect(t, be)
	id := b.sims[0].Identity().IMEI
	b.profile(0)
	ev.wait(t, 0, probeTimeout, "Added", kindFor(modem.Added, id))
	m, _ := be.Get(id)
	b.sims[0].SetFaults(sim.Faults{Delay: 300 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := m.Connect(ctx, modem.ConnectParams{APN: "internet"})
		done <- err
	}()
	waitInfo(t, be, ev, id, probeTimeout, "enabling", func(in modem.Info) bool { return in.State == "enabling" })
	b.sims[0].Unplug()
	b.profile(0)
	select {
	case err := <-done:
		if !errors.Is(err, modem.ErrGone) {
			t.Fatalf("Connect: %v, want modem_gone", err)
		}
		t.Logf("Connect: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Connect still running 30 s after the modem went")
	}
}

// TestForeignBearer: a bearer someone else brought up (here the test calls
// Simple.Connect itself, as NetworkManager would) is reused, never taken
// down: Connect reports it (PPP with the generic plugin, so
// unsupported_bearer) and Disconnect leaves it connected.
func TestForeignBearer(t *testing.T) {
	t.Parallel()
	b := newBench(t, 1)
	be := b.backend(mm.Options{})
	ev := collect(t, be)
	id := b.sims[0].Identity().IMEI
	b.profile(0)
	ev.wait(t, 0, probeTimeout, "Added", kindFor(modem.Added, id))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var bearer dbus.ObjectPath
	err := b.mm.Conn().Object("org.freedesktop.ModemManager1", pathOf(t, b, id)).CallWithContext(ctx,
		"org.freedesktop.ModemManager1.Modem.Simple.Connect", 0,
		map[string]dbus.Variant{"apn": dbus.MakeVariant("internet")}).Store(&bearer)
	if err != nil {
		t.Fatalf("foreign Simple.Connect: %v", err)
	}
	info := waitInfo(t, be, ev, id, probeTimeout, "foreign bearer", func(in modem.Info) bool { return in.Data.Connected })
	if info.Data.APN != "internet" || info.Data.IPv4 == nil || info.Data.IPv4.Method != "ppp" {
		t.Errorf("data %+v", info.Data)
	}
	m, _ := be.Get(id)
	if _, err := m.Connect(ctx, modem.ConnectParams{APN: "INTERNET"}); !errors.Is(err, modem.ErrUnsupported) {
		t.Errorf("Connect over a foreign PPP bearer: %v, want unsupported_bearer", err)
	}
	if err := m.Disconnect(ctx); err != nil {
		t.Errorf("Disconnect: %v", err)
	}
	var connected bool
	v, err := b.mm.Conn().Object("org.freedesktop.ModemManager1", bearer).GetProperty("org.freedesktop.ModemManager1.Bearer.Connected")
	if err == nil {
		connected, _ = v.Value().(bool)
	}
	if !connected {
		t.Errorf("the foreign bearer %s was taken down (%v)", bearer, err)
	}
}

// TestBusRestart: the message bus itself goes away (ModemManager with it)
// and comes back on the same address. The backend forgets every modem,
// redials with backoff and resyncs, without being restarted.
func TestBusRestart(t *testing.T) {
	t.Parallel()
	b := newBench(t, 1)
	be := b.backend(mm.Options{})
	ev := collect(t, be)
	id := b.sims[0].Identity().IMEI
	b.profile(0)
	ev.wait(t, 0, probeTimeout, "Added", kindFor(modem.Added, id))

	mark := ev.mark()
	b.mm.Kill()
	b.mm.Bus.Stop()
	ev.wait(t, mark, probeTimeout, "Removed", kindFor(modem.Removed, id))

	mark = ev.mark()
	start := time.Now()
	b.mm.Bus.Start()
	b.mm.Start()
	b.profile(0)
	ev.wait(t, mark, probeTimeout, "Added after the bus came back", kindFor(modem.Added, id))
	t.Logf("back %v after the bus restarted", time.Since(start).Round(time.Millisecond))
}
