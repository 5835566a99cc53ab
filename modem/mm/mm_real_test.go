package mm_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
