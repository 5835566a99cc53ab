package sim

import (
	"net/netip"
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
