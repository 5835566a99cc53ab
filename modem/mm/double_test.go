package mm_test

import (
	"context"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/simproof/simproof/internal/mmtest"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/modem/mm"
)

// fakeObjects answers GetManagedObjects and Properties.GetAll from fixed
// maps: a stand-in for ModemManager on the bus.
type fakeObjects struct {
	objs map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	path dbus.ObjectPath
}

func (f *fakeObjects) GetManagedObjects() (map[dbus.ObjectPath]map[string]map[string]dbus.Variant, *dbus.Error) {
	return f.objs, nil
}

func (f *fakeObjects) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	if p, ok := f.objs[f.path][iface]; ok {
		return p, nil
	}
	return nil, dbus.NewError("org.freedesktop.DBus.Error.UnknownInterface", []any{iface})
}

// TestHostileSignals uses a D-Bus test double, because the real daemon
// cannot be made to do any of this: send a modem's interfaces with the
// Modem interface last, send signals with bodies of the wrong shape or
// values of the wrong type, and have another bus client impersonate it by
// emitting on its object paths. The backend must piece the modem together,
// ignore what is malformed or not from ModemManager's owner, and never
// panic.
func TestHostileSignals(t *testing.T) {
	t.Parallel()
	bus := mmtest.StartBus(t)
	fake := bus.Conn(t)
	const modemPath = dbus.ObjectPath("/org/freedesktop/ModemManager1/Modem/7")
	const simPath = dbus.ObjectPath("/org/freedesktop/ModemManager1/SIM/3")
	root := &fakeObjects{objs: map[dbus.ObjectPath]map[string]map[string]dbus.Variant{}}
	sim := &fakeObjects{path: simPath, objs: map[dbus.ObjectPath]map[string]map[string]dbus.Variant{
		simPath: {"org.freedesktop.ModemManager1.Sim": {
			"SimIdentifier": dbus.MakeVariant("8944000000000000001"), "Imsi": dbus.MakeVariant("001010000000001"),
		}},
	}}
	if err := fake.Export(root, "/org/freedesktop/ModemManager1", "org.freedesktop.DBus.ObjectManager"); err != nil {
		t.Fatal(err)
	}
	if err := fake.Export(sim, simPath, "org.freedesktop.DBus.Properties"); err != nil {
		t.Fatal(err)
	}
	if reply, err := fake.RequestName("org.freedesktop.ModemManager1", 0); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName: %v %v", reply, err)
	}
	be, err := mm.New(context.Background(), mm.Options{BusAddress: bus.Address, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	ev := collect(t, be)
	emit := func(c *dbus.Conn, path dbus.ObjectPath, name string, body ...any) {
		t.Helper()
		if err := c.Emit(path, name, body...); err != nil {
			t.Fatal(err)
		}
	}
	const om = "org.freedesktop.DBus.ObjectManager"
	const imei = "356938035643809"
	v := dbus.MakeVariant

	// Another client emits a whole modem on ModemManager's paths.
	impostor := bus.Conn(t)
	emit(impostor, "/org/freedesktop/ModemManager1", om+".InterfacesAdded", dbus.ObjectPath("/org/freedesktop/ModemManager1/Modem/9"),
		map[string]map[string]dbus.Variant{"org.freedesktop.ModemManager1.Modem": {"EquipmentIdentifier": v("490154203237518"), "State": v(int32(8))}})
	// Malformed bodies.
	emit(fake, "/org/freedesktop/ModemManager1", om+".InterfacesAdded", "not a path", uint32(7))
	emit(fake, "/org/freedesktop/ModemManager1", om+".InterfacesRemoved", modemPath)
	emit(fake, modemPath, "org.freedesktop.DBus.Properties.PropertiesChanged", "org.freedesktop.ModemManager1.Modem")
	// The modem, Modem3gpp first.
	emit(fake, "/org/freedesktop/ModemManager1", om+".InterfacesAdded", modemPath,
		map[string]map[string]dbus.Variant{"org.freedesktop.ModemManager1.Modem.Modem3gpp": {
			"Imei": v(imei), "RegistrationState": v(uint32(5)), "OperatorName": v("Roam"),
		}})
	emit(fake, "/org/freedesktop/ModemManager1", om+".InterfacesAdded", modemPath,
		map[string]map[string]dbus.Variant{"org.freedesktop.ModemManager1.Modem": {
			"EquipmentIdentifier": v(imei), "State": v(int32(8)), "Sim": v(simPath),
			"SignalQuality": v(struct {
				Q uint32
				R bool
			}{55, true}), // (ub)
			"AccessTechnologies": v(uint32(1 << 14)),
		}})
	got := ev.wait(t, 0, 10*time.Second, "Added", kindFor(modem.Added, imei)).Info
	if got.Registration != "roaming" || got.Network.OperatorName != "Roam" || got.SIM.ICCID != "8944000000000000001" ||
		got.State != "registered" || got.AccessTechnology != "lte" || got.SignalQuality == nil || *got.SignalQuality != 55 {
		t.Errorf("pieced-together modem: %+v", got)
	}
	// Wrong types degrade a field; they do not drop the modem.
	mark := ev.mark()
	emit(fake, modemPath, "org.freedesktop.DBus.Properties.PropertiesChanged", "org.freedesktop.ModemManager1.Modem",
		map[string]dbus.Variant{"State": v("registered"), "SignalQuality": v(uint32(7)), "Sim": v(42)}, []string{})
	changed := ev.wait(t, mark, 10*time.Second, "Changed", kindFor(modem.Changed, imei)).Info
	if changed.State != "unknown" || changed.SignalQuality != nil || changed.IMEI != imei {
		t.Errorf("after wrong types: %+v", changed)
	}
	if n := len(be.List()); n != 1 {
		t.Errorf("%d modems listed; the impostor's must not be: %+v", n, be.List())
	}
	// ModemManager leaves: the modem goes.
	mark = ev.mark()
	if _, err := fake.ReleaseName("org.freedesktop.ModemManager1"); err != nil {
		t.Fatal(err)
	}
	ev.wait(t, mark, 10*time.Second, "Removed", kindFor(modem.Removed, imei))
}
