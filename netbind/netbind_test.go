package netbind

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simproof/simproof/modem"
)

func TestParseIPConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       modem.IPConfig
		fam     family
		prefix  string
		gateway string // "" = none
		err     string
	}{
		{"v4 with gateway", modem.IPConfig{Address: "100.64.0.2", Prefix: 24, Gateway: "100.64.0.1"}, fam4, "100.64.0.2/24", "100.64.0.1", ""},
		{"v4 unknown prefix is a host", modem.IPConfig{Address: "100.64.0.2"}, fam4, "100.64.0.2/32", "", ""},
		{"gateway 0.0.0.0 is none", modem.IPConfig{Address: "100.64.0.2", Prefix: 30, Gateway: "0.0.0.0"}, fam4, "100.64.0.2/30", "", ""},
		{"gateway = address is none", modem.IPConfig{Address: "100.64.0.2", Prefix: 30, Gateway: "100.64.0.2"}, fam4, "100.64.0.2/30", "", ""},
		{"v4-mapped", modem.IPConfig{Address: "::ffff:100.64.0.2", Prefix: 24}, fam4, "100.64.0.2/24", "", ""},
		{"v6 link-local gateway", modem.IPConfig{Address: "2001:db8::2", Prefix: 64, Gateway: "fe80::1"}, fam6, "2001:db8::2/64", "fe80::1", ""},
		{"v6 unknown prefix", modem.IPConfig{Address: "2001:db8::2"}, fam6, "2001:db8::2/128", "", ""},
		{"wrong family", modem.IPConfig{Address: "2001:db8::2"}, fam4, "", "", "not a global IPv4"},
		{"link-local address", modem.IPConfig{Address: "fe80::2"}, fam6, "", "", "not a global IPv6"},
		{"garbage", modem.IPConfig{Address: "wwan0"}, fam4, "", "", "address"},
		{"prefix too long", modem.IPConfig{Address: "100.64.0.2", Prefix: 33}, fam4, "", "", "prefix length 33"},
		{"gateway of the other family", modem.IPConfig{Address: "100.64.0.2", Gateway: "2001:db8::1"}, fam4, "", "", "gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := parseIPConfig(&tc.c, tc.fam)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.prefix.String() != tc.prefix {
				t.Errorf("prefix %s, want %s", b.prefix, tc.prefix)
			}
			if got := b.gateway; (tc.gateway == "" && got.IsValid()) || (tc.gateway != "" && got.String() != tc.gateway) {
				t.Errorf("gateway %v, want %q", got, tc.gateway)
			}
		})
	}
}

func TestConfigParseMTU(t *testing.T) {
	v4 := func(mtu int) *modem.IPConfig { return &modem.IPConfig{Address: "100.64.0.2", MTU: mtu} }
	v6 := func(mtu int) *modem.IPConfig { return &modem.IPConfig{Address: "2001:db8::2", MTU: mtu} }
	for _, tc := range []struct {
		name    string
		c       Config
		mtu     int
		wantErr bool
	}{
		{"v4 MTU", Config{IPv4: v4(1428)}, 1428, false},
		{"v6 MTU when v4 has none", Config{IPv4: v4(0), IPv6: v6(1400)}, 1400, false},
		{"v4 wins", Config{IPv4: v4(1500), IPv6: v6(1400)}, 1500, false},
		{"below IPv4 minimum", Config{IPv4: v4(500)}, 0, true},
		{"below IPv6 minimum", Config{IPv4: v4(1000), IPv6: v6(0)}, 0, true},
		{"no families", Config{}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := tc.c.parse()
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && d.mtu != tc.mtu {
				t.Errorf("mtu %d, want %d", d.mtu, tc.mtu)
			}
		})
	}
}

func TestParseDNS(t *testing.T) {
	got, err := parseDNS([]string{"100.64.0.53", "2001:db8::53", "[2001:db8::54]:5353", "::ffff:192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"100.64.0.53:53", "[2001:db8::53]:53", "[2001:db8::54]:5353", "192.0.2.1:53"}
	for i, ap := range got {
		if ap.String() != want[i] {
			t.Errorf("server %d = %s, want %s", i, ap, want[i])
		}
	}
	if _, err := parseDNS([]string{"dns.example"}); err == nil {
		t.Error("a name was accepted as a DNS server")
	}
}

func TestSlots(t *testing.T) {
	b := NewBinder(Options{TableBase: 5000, MaxSlots: 3})
	slot := func(id string) int {
		t.Helper()
		s, err := b.Slot(id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, c, d := slot("a"), slot("b"), slot("c")
	if a != 0 || c != 1 || d != 2 {
		t.Fatalf("slots %d %d %d, want 0 1 2", a, c, d)
	}
	if slot("a") != a {
		t.Error("slot of a changed")
	}
	if _, err := b.Slot("d"); !errors.Is(err, ErrNoSlot) {
		t.Errorf("fourth modem: %v, want ErrNoSlot", err)
	}
	b.Release("b")
	if s := slot("d"); s != 1 {
		t.Errorf("after release, d got slot %d, want the freed 1", s)
	}
	if tbl, err := b.Table("c"); err != nil || tbl != 5002 {
		t.Errorf("table of c = %d, %v; want 5002", tbl, err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o  Options
		ok bool
	}{
		{NewBinder(Options{}).opts, true},
		{Options{TableBase: 100, MaxSlots: 100, RulePriority: 100}, true},
		{Options{TableBase: 200, MaxSlots: 100, RulePriority: 100}, false}, // covers 253..255
		{Options{TableBase: 1000, MaxSlots: 10, RulePriority: 32765}, false},
		{Options{TableBase: -1, MaxSlots: 10, RulePriority: 100}, false},
	} {
		if err := tc.o.validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: err = %v, want ok %v", tc.o, err, tc.ok)
		}
	}
}

func TestBearerError(t *testing.T) {
	var err error = &BearerError{Interface: "wwan3", Reason: "down"}
	if !errors.Is(err, modem.ErrNoBearer) {
		t.Error("BearerError does not match modem.ErrNoBearer")
	}
	if got := err.Error(); got != "no_bearer: wwan3: down" {
		t.Errorf("message %q", got)
	}
}

func TestNewClientOptionErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    ClientOptions
		want string
	}{
		{"no interface", ClientOptions{}, "no interface"},
		{"DNS name", ClientOptions{Interface: "wwan0", DNS: []string{"dns.example"}}, "DNS server"},
		{"missing CA file", ClientOptions{Interface: "wwan0", ExtraCAFile: filepath.Join(dir, "absent.pem")}, "extra CA"},
		{"CA file without PEM", ClientOptions{Interface: "wwan0", ExtraCAFile: notPEM}, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewClient(tc.o)
			if err == nil {
				p.Close()
				t.Fatal("NewClient succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestFamilyOf(t *testing.T) {
	for s, want := range map[string]family{"192.0.2.1": fam4, "::ffff:192.0.2.1": fam4, "2001:db8::1": fam6} {
		if got := familyOf(netip.MustParseAddr(s)); got != want {
			t.Errorf("familyOf(%s) = %v, want %v", s, got, want)
		}
	}
}
