package sim_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/simproof/simproof/modem/sim"
)

// vendorModem is newPTYModem for a vendor's dialogue.
func vendorModem(t *testing.T, vendor string) (*sim.Modem, *wire) {
	t.Helper()
	m, w, _ := newPTYModem(t, testIdentity())
	if err := m.UseVendor(vendor); err != nil {
		t.Fatal(err)
	}
	return m, w
}

func requireActive(t *testing.T, m *sim.Modem, cid int, want bool) {
	t.Helper()
	if c, _ := m.Context(cid); c.Active != want {
		t.Errorf("context %d active = %v, want %v", cid, c.Active, want)
	}
}

// Each vendor says who it is the way the real modules do, so that the AT
// backend's auto-detection picks the vendor's profile; the rest of the
// identity stays.
func TestVendorIdentity(t *testing.T) {
	for _, tt := range []struct{ vendor, cgmi, cgmm string }{
		{"quectel-ecm", "Quectel", "EC25"},
		{"quectel-qmi", "Quectel", "EC25"},
		{"simcom", "SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H"},
		{"huawei", "Huawei Technologies Co., Ltd.", "ME909s-120"},
		{"ublox", "u-blox", "TOBY-L210"},
		{"ublox-router", "u-blox", "TOBY-L210"},
		{"sierra", "Sierra Wireless, Incorporated", "MC7304"},
		{"generic", "SimVendor", "SimModem LTE"},
	} {
		t.Run(tt.vendor, func(t *testing.T) {
			m, w := vendorModem(t, tt.vendor)
			run(t, w, []step{
				{"AT+CGMI", ok(tt.cgmi)},
				{"AT+CGMM", ok(tt.cgmm)},
				{"AT+CGSN", ok(testIdentity().IMEI)},
			})
			if id := m.Identity(); id.IMEI != testIdentity().IMEI || id.Manufacturer != tt.cgmi {
				t.Errorf("identity %+v", id)
			}
		})
	}
	if err := sim.New(testIdentity()).UseVendor("nokia"); err == nil || !strings.Contains(err.Error(), "quectel-ecm") {
		t.Errorf("unknown vendor: %v", err)
	}
}

func TestQuectelECMDialogue(t *testing.T) {
	m, w := vendorModem(t, "quectel-ecm")
	run(t, w, []step{
		{`AT+QCFG="usbnet"`, ok(`+QCFG: "usbnet",1`)},
		{`AT+QCFG="nat"`, cme(50)},
		{"AT+QNETDEVCTL?", ok("+QNETDEVCTL: 0,0,0,0")},
		{`AT+QICSGP=1,1,"internet","user","pw",2`, ok()},
		{"AT+QICSGP=1", ok(`+QICSGP: 1,"internet","user","",2`)},
		{"AT$QCRMCALL=1,1", cme(3)}, // not in ECM mode
		{"AT+QNETDEVCTL=1,1,1", ok()},
		{"AT+QNETDEVCTL?", ok("+QNETDEVCTL: 1,1,1,1")},
		{"AT+CGACT?", ok("+CGACT: 1,1")},
		{`AT+QICSGP=1,1,"other","","",0`, cme(3)}, // not while the call is up
		{"AT+CGCONTRDP=1", ok(`+CGCONTRDP: 1,5,"internet","100.64.1.2.255.255.255.0","100.64.1.1","100.64.1.53","100.64.1.54"`)},
		{"AT+QNETDEVCTL=7,1,1", cme(50)},
		{"AT+QNETDEVCTL=1,9,1", cme(50)}, // no context 9
		{"AT+QNETDEVCTL=0,1,0", ok()},
		{"AT+QNETDEVCTL?", ok("+QNETDEVCTL: 0,1,0,0")},
	})
	requireActive(t, m, 1, false)
	// The network drops the call: the status follows.
	run(t, w, []step{{"AT+QNETDEVCTL=3,1,0", ok()}})
	if err := m.InjectNWDeact(1); err != nil {
		t.Fatal(err)
	}
	run(t, w, []step{{"AT+QNETDEVCTL?", ok("+QNETDEVCTL: 3,1,0,0")}})
	// RNDIS is served the same way; rmnet is not.
	run(t, w, []step{
		{`AT+QCFG="usbnet",3`, ok()},
		{"AT+QNETDEVCTL=1,1,1", ok()},
		{`AT+QCFG="usbnet",0`, ok()},
		{"AT+QNETDEVCTL=1,1,1", cme(3)},
		{`AT+QCFG="usbnet",4`, cme(50)},
	})
}

func TestQCRMCALLDialogue(t *testing.T) {
	for _, vendor := range []string{"quectel-qmi", "simcom"} {
		t.Run(vendor, func(t *testing.T) {
			m, w := vendorModem(t, vendor)
			b := sim.DefaultBearer(0)
			b.IPv6 = netip.MustParsePrefix("2001:db8:64:1::2/64")
			m.SetBearer(b)
			steps := []step{
				{"AT$QCRMCALL?", ok()},
				{"AT$QCRMCALL=0,1", cme(3)}, // no call to stop
				{"AT$QCRMCALL=1,1", ok("$QCRMCALL: 1,V4")},
				{"AT$QCRMCALL?", ok("$QCRMCALL: 1,V4")},
				{"AT+CGACT?", ok("+CGACT: 1,1")},
				{"AT$QCRMCALL=0,1", ok()},
				{"AT+CGACT?", ok("+CGACT: 1,0")},
				{`AT+CGDCONT=1,"IPV4V6","internet"`, ok()},
				{"AT$QCRMCALL=1,1,3,2,1", ok("$QCRMCALL: 1,V4", "$QCRMCALL: 1,V6")},
				{"AT$QCRMCALL=1,1,3,2,2", cme(50)}, // no context 2
				{"AT$QCRMCALL=0,1,3,2,1", ok()},
				{"AT$QCRMCALL=1,2", cme(50)},       // instance 1 only
				{"AT$QCRMCALL=1,1,1,1,1", cme(50)}, // 3GPP2
				{`AT+CGDCONT=1,"IPV6","internet"`, ok()},
				{"AT$QCRMCALL=1,1,1,2,1", cme(148)}, // an IPv4 call on an IPv6 context
			}
			if vendor == "quectel-qmi" {
				steps = append([]step{{`AT+QCFG="usbnet"`, ok(`+QCFG: "usbnet",0`)}, {"AT+QNETDEVCTL=1,1,1", cme(3)}}, steps...)
			}
			run(t, w, steps)
			requireActive(t, m, 1, false)
		})
	}
}

func TestHuaweiDialogue(t *testing.T) {
	m, w := vendorModem(t, "huawei")
	run(t, w, []step{
		{"AT^NDISSTATQRY?", ok(`^NDISSTATQRY: 0,,,"IPV4"`)},
		{"AT^DHCP?", cme(3)},
		{"AT^NDISDUP=1,0", "\r\nERROR\r\n"}, // nothing to stop
	})
	// The call: OK, then the URC.
	w.send("AT^NDISDUP=1,1,\"internet\"\r")
	want := ok() + "\r\n" + `^NDISSTAT: 1,,,"IPV4"` + "\r\n"
	if got := w.until(want); got != want {
		t.Errorf("^NDISDUP=1,1 answered %q, want %q", got, want)
	}
	requireActive(t, m, 1, true)
	// 100.64.1.2/24, gateway .1, DNS .53 and .54, as little-endian hex
	// with the leading zero dropped.
	run(t, w, []step{
		{"AT^NDISSTATQRY?", ok(`^NDISSTATQRY: 1,,,"IPV4"`)},
		{"AT^DHCP?", ok("^DHCP: 2014064,FFFFFF,1014064,1014064,35014064,36014064,150000000,50000000")},
	})
	w.send("AT^NDISDUP=1,0\r")
	want = ok() + "\r\n" + `^NDISSTAT: 0,,,"IPV4"` + "\r\n"
	if got := w.until(want); got != want {
		t.Errorf("^NDISDUP=1,0 answered %q, want %q", got, want)
	}
	requireActive(t, m, 1, false)

	// Credentials go with the call; the network refuses an IPv4 call on an
	// IPv6-only bearer with cause 51, after the OK.
	b := sim.DefaultBearer(0)
	b.IPv4 = netip.Prefix{}
	b.IPv6 = netip.MustParsePrefix("2001:db8:64:1::2/64")
	m.SetBearer(b)
	w.send("AT^NDISDUP=1,1,\"internet\",\"user\",\"pw\",2\r")
	want = ok() + "\r\n" + `^NDISSTAT: 0,51,,"IPV4"` + "\r\n"
	if got := w.until(want); got != want {
		t.Errorf("refused ^NDISDUP answered %q, want %q", got, want)
	}
	requireActive(t, m, 1, false)
	run(t, w, []step{{`AT+CGDCONT=1,"IPV4V6","internet"`, ok()}})
	w.send("AT^NDISDUP=1,1\r")
	want = ok() + "\r\n" + `^NDISSTAT: 1,,,"IPV6"` + "\r\n"
	if got := w.until(want); got != want {
		t.Errorf("dual-stack ^NDISDUP answered %q, want %q", got, want)
	}
	run(t, w, []step{
		{"AT^NDISSTATQRY?", ok(`^NDISSTATQRY: 0,,,"IPV4",1,,,"IPV6"`)},
		{"AT^DHCP?", cme(3)}, // no IPv4
	})
}

func TestUbloxDialogue(t *testing.T) {
	m, w := vendorModem(t, "ublox")
	run(t, w, []step{
		{"AT+UBMCONF?", ok("+UBMCONF: 2")},
		{"AT+UUSBCONF?", ok(`+UUSBCONF: 2,"ECM",,"0x1143"`)},
		{"AT+UAUTHREQ=?", ok("+UAUTHREQ: (1-8),(0-3),,")},
		{`AT+UAUTHREQ=1,2,"user","pw"`, ok()},
		{"AT+UCEDATA=?", cme(4)},
		{"AT+UIPADDR=1", ok(`+UIPADDR: 1,"","","","",""`)},
		{"AT+CGACT=1,1", ok()},
		// The reference run's answer: the third field is the gateway.
		{"AT+UIPADDR=1", ok(`+UIPADDR: 1,"usb0","100.64.1.1","255.255.255.0","",""`)},
		{"AT+UBMCONF=1", ok()},
		{"AT+UBMCONF?", ok("+UBMCONF: 1")},
		{"AT+UBMCONF=3", cme(50)},
		{"AT+CGACT=0,1", ok()},
	})
	requireActive(t, m, 1, false)
	_, w2 := vendorModem(t, "ublox-router")
	run(t, w2, []step{{"AT+UBMCONF?", ok("+UBMCONF: 1")}})
}

func TestSierraDialogue(t *testing.T) {
	m, w := vendorModem(t, "sierra")
	run(t, w, []step{
		{"AT!SCACT?", ok("!SCACT: 1,0")},
		{`AT$QCPDPP=1,2,"pw","user"`, ok()},
		{"AT!SCACT=1,1", ok()},
		{"AT!SCACT?", ok("!SCACT: 1,1")},
		{"AT!SCACT=1,4", cme(50)},
		{"AT!SCACT=0,1", ok()},
		{"AT!SCACT?", ok("!SCACT: 1,0")},
	})
	requireActive(t, m, 1, false)
	// Not registered: the activation is refused as +CGACT's is.
	m.SetFaults(sim.Faults{NotRegistered: true})
	run(t, w, []step{{"AT!SCACT=1,1", cme(30)}})
}

// Switching vendors leaves none of the old vendor's commands; "generic"
// is the plain 3GPP modem again.
func TestUseVendorSwitches(t *testing.T) {
	m, w := vendorModem(t, "huawei")
	run(t, w, []step{{"AT^NDISSTATQRY?", ok(`^NDISSTATQRY: 0,,,"IPV4"`)}})
	if err := m.UseVendor("sierra"); err != nil {
		t.Fatal(err)
	}
	run(t, w, []step{
		{"AT^NDISSTATQRY?", cme(4)},
		{"AT!SCACT?", ok("!SCACT: 1,0")},
		{"AT+CGMI", ok("Sierra Wireless, Incorporated")},
	})
	if err := m.UseVendor("generic"); err != nil {
		t.Fatal(err)
	}
	run(t, w, []step{
		{"AT!SCACT?", cme(4)},
		{"AT+CGACT=1,1", ok()},
		{"AT+CGMI", ok("SimVendor")},
	})
}

func TestExec(t *testing.T) {
	m := sim.New(testIdentity())
	defer m.Close()
	if err := m.UseVendor("quectel-qmi"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ cmd, want string }{
		{`AT+QCFG="usbnet",1`, "OK"},
		{`+QCFG="usbnet"`, "+QCFG: \"usbnet\",1\nOK"},
		{"AT+NOPE", "+CME ERROR: 4"},
	} {
		if got := m.Exec(tt.cmd); got != tt.want {
			t.Errorf("Exec(%q) = %q, want %q", tt.cmd, got, tt.want)
		}
	}
}
