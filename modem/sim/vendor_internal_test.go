package sim

import (
	"net/netip"
	"strings"
	"testing"
)

// A vendor dialogue adds commands and never replaces a generic one:
// UseVendor removes a vendor's commands by name when it switches, which
// would otherwise take the generic handler with them.
func TestVendorTablesAddOnly(t *testing.T) {
	generic := map[string]bool{}
	for _, tbl := range []map[string]handler{v250Commands(), generic3GPPCommands(), generic3GPPDataCommands()} {
		for n := range tbl {
			generic[n] = true
		}
	}
	names := allVendorCommands()
	if len(names) == 0 {
		t.Fatal("no vendor commands")
	}
	for n := range names {
		if generic[n] {
			t.Errorf("vendor command %s shadows the generic one", n)
		}
	}
}

func TestHexLE(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"100.64.1.2", "2014064"},
		{"192.168.1.10", "A01A8C0"},
		{"10.0.0.1", "100000A"},
		{"0.0.0.0", "0"},
		{"255.255.255.0", "FFFFFF"},
	} {
		if got := hexLE(netip.MustParseAddr(tt.in)); got != tt.want {
			t.Errorf("hexLE(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// Vendor handlers take hostile command lines like the rest: no panic, and
// every line gets a final result code.
func FuzzVendorCommands(f *testing.F) {
	for _, s := range []string{
		`AT+QCFG="usbnet",1`, `AT+QCFG="usbnet"`, "AT+QNETDEVCTL=1,1,1", "AT+QNETDEVCTL?",
		`AT+QICSGP=1,1,"a","b","c",3`, "AT+QICSGP=1", "AT$QCRMCALL=1,1,3,2,1", "AT$QCRMCALL?",
		`AT^NDISDUP=1,1,"a","b","c",2`, "AT^NDISDUP=1,0", "AT^NDISSTATQRY?", "AT^DHCP?",
		"AT+UBMCONF=1", "AT+UIPADDR", "AT+UIPADDR=1", "AT+UAUTHREQ=1,3", "AT!SCACT=1,1", "AT!SCACT?",
		`AT$QCPDPP=1,2,"p","u"`, "AT+CGACT=1,1;$QCRMCALL=0,1;^NDISDUP=1,1", `AT+QICSGP=17,1,"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\r\n") || strings.Contains(strings.ToUpper(line), "Q1") {
			return // one command line; ATQ1 silences the answer by design
		}
		for _, v := range Vendors() {
			m := New(DefaultIdentity(0))
			if err := m.UseVendor(v); err != nil {
				t.Fatal(err)
			}
			out := m.Exec(line)
			last := out[strings.LastIndex(out, "\n")+1:]
			switch {
			case last == "OK", last == "ERROR", last == "NO CARRIER", strings.HasPrefix(last, "+CME ERROR:"),
				strings.HasPrefix(last, "CONNECT"), len(last) == 1 && last[0] >= '0' && last[0] <= '9':
			default:
				t.Errorf("%s: %q answered %q: no final result code", v, line, out)
			}
		}
	})
}
