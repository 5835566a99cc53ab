package netbind

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/simproof/simproof/modem"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestBindToDeviceFailureNamesInterface: the Control hook's failure is the
// dial's failure, naming the interface. Unprivileged processes may set
// SO_BINDTODEVICE since Linux 5.7; older kernels answer EPERM, which must
// fail the dial just the same.
func TestBindToDeviceFailureNamesInterface(t *testing.T) {
	d := net.Dialer{Control: bindToDevice("nosuch0")}
	c, err := d.Dial("udp", "127.0.0.1:9")
	if err == nil {
		c.Close()
		t.Fatal("dial succeeded with a socket bound to a missing interface")
	}
	if !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("error %q does not name the interface", err)
	}
	if !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.EPERM) {
		t.Errorf("error %v: want ENODEV (or EPERM on old kernels)", err)
	}
}

// TestPinnedMissingInterface: a client for an interface that does not exist
// fails every dial and lookup with no_bearer before any socket is made.
func TestPinnedMissingInterface(t *testing.T) {
	p, err := NewClient(ClientOptions{Interface: "nosuch0", DNS: []string{"192.0.2.53"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	for _, addr := range []string{"192.0.2.1:80", "[2001:db8::1]:80", "example.test:80"} {
		_, err := p.DialContext(ctx, "tcp", addr)
		if !errors.Is(err, modem.ErrNoBearer) {
			t.Errorf("dial %s: %v, want no_bearer", addr, err)
		}
	}
	if _, err := p.dialDNS(ctx, "udp", "127.0.0.53:53"); !errors.Is(err, modem.ErrNoBearer) {
		t.Errorf("DNS dial: %v, want no_bearer", err)
	}
	resp, err := p.Client.Get("http://192.0.2.1/")
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, modem.ErrNoBearer) {
		t.Errorf("request: %v, want no_bearer", err)
	}
}

func TestWantRoutesAndRules(t *testing.T) {
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	d := desired{
		want: fam4 | fam6,
		v4:   &bearerAddr{prefix: p("10.1.2.3/32"), gateway: a("10.1.2.1")}, // gateway outside a host prefix
		v6:   &bearerAddr{prefix: p("2001:db8:1::2/64")},                    // point-to-point: no gateway
	}
	routes := wantRoutes(7, 1003, d)
	if len(routes) != 3 { // no subnet route for a /32
		t.Fatalf("%d routes, want 3: %v", len(routes), routes)
	}
	for _, r := range routes {
		if r.Table != 1003 || r.LinkIndex != 7 {
			t.Errorf("route %v: table %d dev %d", r, r.Table, r.LinkIndex)
		}
	}
	if r := routes[0]; r.Gw.String() != "10.1.2.1" || r.Flags&int(netlink.FLAG_ONLINK) == 0 || r.Src.String() != "10.1.2.3" {
		t.Errorf("IPv4 default %+v: want via 10.1.2.1 onlink src 10.1.2.3", r)
	}
	if r := routes[1]; r.Dst.String() != "2001:db8:1::/64" || r.Scope != netlink.SCOPE_LINK {
		t.Errorf("IPv6 subnet %+v", r)
	}
	if r := routes[2]; r.Dst.String() != "::/0" || r.Gw != nil || r.Scope != netlink.SCOPE_LINK {
		t.Errorf("IPv6 default %+v: want on-link, no gateway", r)
	}

	rules := wantRules("wwan4", 1003, 9000, d)
	if len(rules) != 4 {
		t.Fatalf("%d rules, want 4", len(rules))
	}
	for i, want := range []struct {
		fam, prio int
		oif, src  string
	}{
		{unix.AF_INET, 9000, "wwan4", "<nil>"},
		{unix.AF_INET, 9001, "", "10.1.2.3/32"},
		{unix.AF_INET6, 9000, "wwan4", "<nil>"},
		{unix.AF_INET6, 9001, "", "2001:db8:1::2/128"},
	} {
		r := rules[i]
		if r.Family != want.fam || r.Priority != want.prio || r.OifName != want.oif || r.Src.String() != want.src || r.Table != 1003 {
			t.Errorf("rule %d = %s (family %d), want %+v", i, ruleString(r), r.Family, want)
		}
	}
}
