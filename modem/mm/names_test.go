package mm

import (
	"errors"
	"reflect"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/simproof/simproof/modem"
)

func TestNames(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{stateName(-1), "failed"},
		{stateName(0), "unknown"},
		{stateName(2), "locked"},
		{stateName(3), "disabled"},
		{stateName(8), "registered"},
		{stateName(11), "connected"},
		{stateName(12), "unknown"},
		{stateName(-7), "unknown"},
		{failedReasonName(2), "sim-missing"},
		{failedReasonName(5), "esim-without-profiles"},
		{failedReasonName(99), "unknown"},
		{lockName(1), "none"},
		{lockName(2), "sim-pin"},
		{lockName(4), "sim-puk"},
		{lockName(16), "ph-netsub-puk"},
		{lockName(17), "unknown"},
		{registrationName(0), "idle"},
		{registrationName(1), "home"},
		{registrationName(3), "denied"},
		{registrationName(5), "roaming"},
		{registrationName(6), "home-sms-only"},
		{registrationName(11), "attached-rlos"},
		{registrationName(12), "unknown"},
		{accessTechName(0), "unknown"},
		{accessTechName(1 << 1), "gsm"},
		{accessTechName(1<<1 | 1<<3 | 1<<4), "edge"},
		{accessTechName(1<<5 | 1<<6), "hsdpa"},
		{accessTechName(1<<6 | 1<<7 | 1<<8), "hspa"},
		{accessTechName(1 << 14), "lte"},
		{accessTechName(1<<14 | 1<<15), "5gnr"},
		{accessTechName(1<<16 | 1<<1), "lte-cat-m"},
		{accessTechName(1 << 17), "lte-nb-iot"},
		{accessTechName(1 << 10), "1xrtt"},
		{accessTechName(0xFFFFFFFF), "unknown"},
		{accessTechName(1 << 30), "unknown"},
		{ipMethodName(1), "ppp"},
		{ipMethodName(2), "static"},
		{ipMethodName(3), "dhcp"},
		{ipMethodName(0), ""},
		{ipMethodName(9), ""},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	for _, c := range []struct {
		v    uint32
		want bool
	}{{0, false}, {1, true}, {2, false}, {3, false}, {5, true}, {6, false}, {7, false}, {9, true}, {10, true}, {11, false}} {
		if got := registered(c.v); got != c.want {
			t.Errorf("registered(%d) = %v", c.v, got)
		}
	}
}

func TestConnectParamsMapping(t *testing.T) {
	for _, c := range []struct {
		ip   string
		want uint32
		ok   bool
	}{{"", 0, true}, {"ipv4", 1, true}, {"ipv6", 2, true}, {"ipv4v6", 4, true}, {"IPv4", 0, false}, {"x", 0, false}} {
		if got, ok := ipFamily(c.ip); got != c.want || ok != c.ok {
			t.Errorf("ipFamily(%q) = %d %v", c.ip, got, ok)
		}
	}
	for _, c := range []struct {
		auth string
		want uint32
		ok   bool
	}{{"", 0, true}, {"none", 1, true}, {"pap", 2, true}, {"chap", 4, true}, {"pap-chap", 6, true}, {"mschap", 0, false}} {
		if got, ok := allowedAuth(c.auth); got != c.want || ok != c.ok {
			t.Errorf("allowedAuth(%q) = %d %v", c.auth, got, ok)
		}
	}
}

func v(x any) dbus.Variant { return dbus.MakeVariant(x) }

// TestPropsHostile: values of the wrong type, out of range, oversized or
// absent degrade to zero values; nothing panics.
func TestPropsHostile(t *testing.T) {
	long := string(make([]byte, 5000))
	p := props{
		"S":     v(uint32(5)),
		"Long":  v(long),
		"U":     v("7"),
		"Path":  v(dbus.ObjectPath("/")),
		"Paths": v([]dbus.ObjectPath{"/", "/org/a", "not a path"}),
		"SQ":    v([]any{uint32(101), true}),
		"Strs":  v([]any{"a"}),
	}
	if p.str("S") != "" || p.u32("U") != 0 || p.i32("S") != 0 || p.boolean("S") {
		t.Error("wrong types must read as zero")
	}
	if len(p.str("Long")) > maxString {
		t.Error("strings must be bounded")
	}
	if p.path("Path") != "" || p.path("Missing") != "" {
		t.Error(`"/" and absent paths must read as ""`)
	}
	if got := p.paths("Paths"); !reflect.DeepEqual(got, []dbus.ObjectPath{"/org/a"}) {
		t.Errorf("paths = %v", got)
	}
	if len(p.strs("Strs")) != 0 || p.dict("S") != nil {
		t.Error("wrong container types must read as empty")
	}
	for _, sq := range []dbus.Variant{v([]any{uint32(101), true}), v([]any{uint32(0), false}), v([]any{uint32(5)}), v("x")} {
		if got := (props{"SignalQuality": sq}).signalQuality(); got != nil {
			t.Errorf("signalQuality(%v) = %d, want nil", sq, *got)
		}
	}
	if got := (props{"SignalQuality": v([]any{uint32(0), true})}).signalQuality(); got == nil || *got != 0 {
		t.Error("a recent 0 is a real 0")
	}
	many := make([]string, 100)
	for i := range many {
		many[i] = "+1555000"
	}
	if got := (props{"OwnNumbers": v(many)}).strs("OwnNumbers"); len(got) != maxList {
		t.Errorf("lists must be bounded: %d", len(got))
	}
}

func TestIPConfig(t *testing.T) {
	cases := []struct {
		name string
		in   props
		v6   bool
		want *modem.IPConfig
	}{
		{"absent", nil, false, nil},
		{"unknown method", props{"method": v(uint32(0))}, false, nil},
		{"ppp", props{"method": v(uint32(1))}, false, &modem.IPConfig{Method: "ppp", DNS: []string{}}},
		{"dhcp", props{"method": v(uint32(3))}, false, &modem.IPConfig{Method: "dhcp", DNS: []string{}}},
		{"static v4", props{
			"method": v(uint32(2)), "address": v("100.64.1.2"), "prefix": v(uint32(24)),
			"gateway": v("100.64.1.1"), "dns1": v("100.64.1.53"), "dns2": v("100.64.1.54"), "mtu": v(uint32(1430)),
		}, false, &modem.IPConfig{Method: "static", Address: "100.64.1.2", Prefix: 24, Gateway: "100.64.1.1",
			DNS: []string{"100.64.1.53", "100.64.1.54"}, MTU: 1430}},
		{"static v6 without gateway", props{
			"method": v(uint32(2)), "address": v("2001:db8:64:1::2"), "prefix": v(uint32(64)), "dns1": v("2001:db8:64:1::53"),
		}, true, &modem.IPConfig{Method: "static", Address: "2001:db8:64:1::2", Prefix: 64, DNS: []string{"2001:db8:64:1::53"}}},
		{"hostile", props{
			"method": v(uint32(2)), "address": v("100.64.1.2; rm -rf /"), "prefix": v(uint32(99)),
			"gateway": v("2001:db8::1"), "dns1": v(uint32(5)), "dns2": v("::ffff:1.2.3.4"), "mtu": v(uint32(9_999_999)),
		}, false, &modem.IPConfig{Method: "static", DNS: []string{}}},
		{"v4 address in Ip6Config", props{"method": v(uint32(2)), "address": v("100.64.1.2"), "prefix": v(uint32(24))},
			true, &modem.IPConfig{Method: "static", DNS: []string{}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ipConfig(c.in, c.v6); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestUsable(t *testing.T) {
	static := &modem.IPConfig{Method: "static", Address: "100.64.1.2", Prefix: 24}
	cases := []struct {
		name string
		d    modem.DataInfo
		want error
	}{
		{"static", modem.DataInfo{Connected: true, Interface: "wwan0", IPv4: static}, nil},
		{"dhcp", modem.DataInfo{Connected: true, Interface: "wwan0", IPv4: &modem.IPConfig{Method: "dhcp"}}, nil},
		{"v6 only", modem.DataInfo{Connected: true, Interface: "wwan0", IPv6: &modem.IPConfig{Method: "static", Address: "2001:db8::2", Prefix: 64}}, nil},
		{"ppp", modem.DataInfo{Connected: true, Interface: "ttyUSB2", IPv4: &modem.IPConfig{Method: "ppp"}}, modem.ErrUnsupported},
		{"ppp v6", modem.DataInfo{Connected: true, Interface: "ttyUSB2", IPv4: static, IPv6: &modem.IPConfig{Method: "ppp"}}, modem.ErrUnsupported},
		{"down", modem.DataInfo{Interface: "wwan0", IPv4: static}, modem.ErrNoBearer},
		{"no config", modem.DataInfo{Connected: true, Interface: "wwan0"}, modem.ErrNoBearer},
		{"no interface", modem.DataInfo{Connected: true, IPv4: static}, modem.ErrNoBearer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := usable(c.d)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("usable = %v, want %v", err, c.want)
			}
		})
	}
}

func TestModemID(t *testing.T) {
	cases := []struct {
		name   string
		m, gpp props
		want   string
	}{
		{"imei from 3gpp", props{"EquipmentIdentifier": v("356938035643809")}, props{"Imei": v("356938035643809")}, "356938035643809"},
		{"imei only as equipment id", props{"EquipmentIdentifier": v("356938035643809")}, nil, "356938035643809"},
		{"cdma meid", props{"EquipmentIdentifier": v("A1000009296E2E")}, nil, "A1000009296E2E"},
		{"bad imei falls back", props{"EquipmentIdentifier": v("X1")}, props{"Imei": v("12345")}, "X1"},
		{"device identifier last", props{"DeviceIdentifier": v("d523fd")}, nil, "d523fd"},
		{"nothing", nil, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := modemID(c.m, c.gpp); got != c.want {
				t.Errorf("id %q, want %q", got, c.want)
			}
		})
	}
}

func TestBuildInfo(t *testing.T) {
	modemProps := props{
		"State": v(int32(11)), "StateFailedReason": v(uint32(0)), "UnlockRequired": v(uint32(1)),
		"Manufacturer": v("u-blox"), "Model": v("TOBY-L210"), "Revision": v("17.00"),
		"EquipmentIdentifier": v("356938035643809"), "PrimaryPort": v("ttyACM0"),
		"AccessTechnologies": v(uint32(1 << 14)), "SignalQuality": v([]any{uint32(64), true}),
		"OwnNumbers": v([]string{"0044 7700 900124"}),
		"Sim":        v(dbus.ObjectPath("/org/freedesktop/ModemManager1/SIM/0")),
	}
	gpp := props{"Imei": v("356938035643809"), "RegistrationState": v(uint32(5)),
		"OperatorCode": v("23410"), "OperatorName": v("O2")}
	sim := props{"SimIdentifier": v("8944000000000000001"), "Imsi": v("234100000000001"),
		"OperatorIdentifier": v("23410"), "OperatorName": v("giffgaff")}
	theirs := props{"Connected": v(true), "Interface": v("wwan1"),
		"Ip4Config":  v(map[string]dbus.Variant{"method": v(uint32(3))}),
		"Properties": v(map[string]dbus.Variant{"apn": v("other")})}
	ours := props{"Connected": v(true), "Interface": v("wwan0"),
		"Ip4Config":  v(map[string]dbus.Variant{"method": v(uint32(2)), "address": v("100.64.1.2"), "prefix": v(uint32(24))}),
		"Properties": v(map[string]dbus.Variant{"apn": v("internet")})}
	got := buildInfo(map[string]props{ifModem: modemProps, if3gpp: gpp}, sim,
		[]bearerView{{props: theirs}, {props: ours, ours: true}})
	q := 64
	want := modem.Info{
		ID: "356938035643809", Backend: "modemmanager", State: "connected",
		Manufacturer: "u-blox", Model: "TOBY-L210", Revision: "17.00", IMEI: "356938035643809", Port: "ttyACM0",
		SIM: modem.SIM{State: "ready", ICCID: "8944000000000000001", IMSI: "234100000000001",
			OperatorID: "23410", OperatorName: "giffgaff", OwnNumbers: []string{"+447700900124"}},
		Network:      modem.Network{OperatorID: "23410", OperatorName: "O2"},
		Registration: "roaming", AccessTechnology: "lte", SignalQuality: &q,
		Data: modem.DataInfo{Connected: true, Interface: "wwan0", APN: "internet",
			IPv4: &modem.IPConfig{Method: "static", Address: "100.64.1.2", Prefix: 24, DNS: []string{}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	locked := props{"State": v(int32(2)), "UnlockRequired": v(uint32(2)), "EquipmentIdentifier": v("356938035643809"),
		"SignalQuality": v([]any{uint32(0), true})}
	got = buildInfo(map[string]props{ifModem: locked}, nil, nil)
	if got.State != "locked" || got.StateReason != "sim-pin" || got.SIM.State != "pin-required" ||
		got.SignalQuality != nil || got.Registration != "unknown" || got.SIM.OwnNumbers == nil {
		t.Errorf("locked modem: %+v", got)
	}
	var se *modem.StateError
	if err := stateError(got); !errors.As(err, &se) || se.Err != modem.ErrSIMLocked || se.Reason != "locked: sim-pin" {
		t.Errorf("stateError(locked) = %v", err)
	}
	failed := props{"State": v(int32(-1)), "StateFailedReason": v(uint32(2)), "EquipmentIdentifier": v("356938035643809")}
	got = buildInfo(map[string]props{ifModem: failed}, nil, nil)
	if got.StateReason != "sim-missing" || got.SIM.State != "missing" {
		t.Errorf("failed modem: %+v", got)
	}
	if err := stateError(got); !errors.Is(err, modem.ErrSIMMissing) {
		t.Errorf("stateError(failed) = %v", err)
	}
	if err := stateError(modem.Info{State: "registered"}); err != nil {
		t.Errorf("stateError(registered) = %v", err)
	}
}

func TestOwnNumbers(t *testing.T) {
	got := ownNumbers([]string{"+44 7700-900124", "00447700900125", "07700900126", " "})
	want := []string{"+447700900124", "+447700900125", "07700900126"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
