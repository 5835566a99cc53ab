package netbind_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/simproof/simproof/internal/nstest"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/netbind"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// state is a namespace's links, addresses, routes (all tables) and rules,
// each rendered as sorted lines.
type state struct {
	links, addrs, routes, rules []string
	ifindex                     map[string]int
}

func snapshot(t *testing.T, ns *nstest.NS) state {
	t.Helper()
	h := ns.Netlink()
	s := state{ifindex: map[string]int{}}
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		a := l.Attrs()
		s.ifindex[a.Name] = a.Index
		s.links = append(s.links, fmt.Sprintf("%s mtu=%d flags=%v", a.Name, a.MTU, a.Flags))
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, ad := range addrs {
			s.addrs = append(s.addrs, fmt.Sprintf("%s %s", a.Name, ad.IPNet))
		}
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			s.routes = append(s.routes, routeLine(r))
		}
		rules, err := h.RuleList(fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			s.rules = append(s.rules, ruleLine(r))
		}
	}
	for _, l := range [][]string{s.links, s.addrs, s.routes, s.rules} {
		slices.Sort(l)
	}
	return s
}

func routeLine(r netlink.Route) string {
	return fmt.Sprintf("table=%d dev=%d dst=%v gw=%v src=%v proto=%d scope=%d type=%d flags=%d metric=%d",
		r.Table, r.LinkIndex, r.Dst, r.Gw, r.Src, r.Protocol, r.Scope, r.Type, r.Flags, r.Priority)
}

func ruleLine(r netlink.Rule) string {
	return fmt.Sprintf("prio=%d fam=%d table=%d oif=%s iif=%s src=%v dst=%v", r.Priority, r.Family, r.Table, r.OifName, r.IifName, r.Src, r.Dst)
}

func diff(t *testing.T, what string, got, want []string) {
	t.Helper()
	for _, l := range got {
		if !slices.Contains(want, l) {
			t.Errorf("%s: extra %s", what, l)
		}
	}
	for _, l := range want {
		if !slices.Contains(got, l) {
			t.Errorf("%s: missing %s", what, l)
		}
	}
}

func requireSame(t *testing.T, got, want state) {
	t.Helper()
	diff(t, "links", got.links, want.links)
	diff(t, "addresses", got.addrs, want.addrs)
	diff(t, "routes", got.routes, want.routes)
	diff(t, "rules", got.rules, want.rules)
}

// routesOffDevs are the route lines not through any of the given links.
func routesOffDevs(s state, names ...string) []string {
	var out []string
	for _, l := range s.routes {
		skip := false
		for _, n := range names {
			skip = skip || strings.Contains(l, fmt.Sprintf(" dev=%d ", s.ifindex[n]))
		}
		if !skip {
			out = append(out, l)
		}
	}
	return out
}

func linesWith(lines []string, subs ...string) []string {
	var out []string
	for _, l := range lines {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

func TestApplyRemove(t *testing.T) {
	tp := nstest.NewTopology(t, nstest.Options{Modems: 2})
	dev := tp.Device
	ctx := context.Background()
	m0, m1 := tp.Modems[0], tp.Modems[1]
	dev.SetDown(t, m1.Interface) // Apply must bring it up, Remove put it back down
	b := netbind.NewBinder(netbind.Options{NetNS: dev.Path()})

	before := snapshot(t, dev)
	c0 := netbind.Config{Interface: m0.Interface, ModemID: "modem-a", IPv4: m0.IPv4(tp), IPv6: m0.IPv6(tp), Manage: netbind.ManageAlways}
	c0.IPv4.MTU = 1400
	a0, err := b.Apply(ctx, c0)
	if err != nil {
		t.Fatal(err)
	}
	once := snapshot(t, dev)
	again, err := b.Apply(ctx, c0)
	if err != nil {
		t.Fatal(err)
	}
	if again != a0 {
		t.Errorf("second apply = %+v, first %+v", again, a0)
	}
	t.Run("apply twice changes nothing", func(t *testing.T) { requireSame(t, snapshot(t, dev), once) })

	a1, err := b.Apply(ctx, netbind.Config{Interface: m1.Interface, ModemID: "modem-b", IPv4: m1.IPv4(tp), IPv6: m1.IPv6(tp)})
	if err != nil {
		t.Fatal(err)
	}
	both := snapshot(t, dev)

	t.Run("tables and rules per modem", func(t *testing.T) {
		if !a0.Managed || !a1.Managed || a0.Table == a1.Table || a0.Table == 0 {
			t.Fatalf("applied %+v and %+v: want two managed, distinct tables", a0, a1)
		}
		for _, a := range []netbind.Applied{a0, a1} {
			idx := both.ifindex[a.Interface]
			tbl := fmt.Sprintf("table=%d ", a.Table)
			routes := linesWith(both.routes, tbl)
			if len(routes) != 4 { // subnet + default, both families
				t.Errorf("table %d has %d routes, want 4: %q", a.Table, len(routes), routes)
			}
			if n := len(linesWith(routes, fmt.Sprintf(" dev=%d ", idx))); n != len(routes) {
				t.Errorf("table %d: %d of %d routes through %s", a.Table, n, len(routes), a.Interface)
			}
			for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
				f := fmt.Sprintf("fam=%d %s", fam, tbl)
				if n := len(linesWith(both.rules, f, "oif="+a.Interface+" ")); n != 1 {
					t.Errorf("%d oif rules for %s family %d, want 1", n, a.Interface, fam)
				}
				if n := len(linesWith(both.rules, f, "src=")) - len(linesWith(both.rules, f, "src=<nil>")); n != 1 {
					t.Errorf("%d from rules for %s family %d, want 1", n, a.Interface, fam)
				}
			}
		}
		for _, g := range []netip.Addr{m0.Gateway4, m0.Gateway6} {
			if len(linesWith(both.routes, fmt.Sprintf("table=%d ", a0.Table), "gw="+g.String())) != 1 {
				t.Errorf("no default via %s in table %d", g, a0.Table)
			}
		}
		if !slices.Contains(both.links, m0.Interface+" mtu=1400 flags=up|broadcast|multicast|running") {
			t.Errorf("wwan0 not up with MTU 1400: %q", both.links)
		}
	})
	t.Run("other interfaces' routes untouched", func(t *testing.T) {
		diff(t, "routes", routesOffDevs(both, m0.Interface, m1.Interface), routesOffDevs(before, m0.Interface, m1.Interface))
		if got := linesWith(both.routes, fmt.Sprintf(" dev=%d ", both.ifindex[tp.Eth0])); !slices.Equal(got, linesWith(before.routes, fmt.Sprintf(" dev=%d ", before.ifindex[tp.Eth0]))) {
			t.Errorf("eth0 routes changed: %q", got)
		}
	})

	t.Run("new bearer address replaces the old one", func(t *testing.T) {
		c := c0
		v4 := *c0.IPv4
		v4.Address = "100.64.0.9"
		c.IPv4 = &v4
		if _, err := b.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
		s := snapshot(t, dev)
		if len(linesWith(s.addrs, m0.Interface+" 100.64.0.9/24")) != 1 || len(linesWith(s.addrs, m0.Addr4.String())) != 0 {
			t.Errorf("addresses after re-apply: %q", s.addrs)
		}
		if len(linesWith(s.rules, "src="+m0.Addr4.Addr().String()+"/32")) != 0 || len(linesWith(s.rules, "src=100.64.0.9/32")) != 1 {
			t.Errorf("rules after re-apply: %q", s.rules)
		}
		if _, err := b.Apply(ctx, c0); err != nil {
			t.Fatal(err)
		}
		requireSame(t, snapshot(t, dev), both)
	})

	t.Run("remove restores the namespace", func(t *testing.T) {
		if err := b.Remove(ctx, a0); err != nil {
			t.Fatal(err)
		}
		if err := b.Remove(ctx, a1); err != nil {
			t.Fatal(err)
		}
		requireSame(t, snapshot(t, dev), before)
		if err := b.Remove(ctx, a0); err != nil {
			t.Errorf("second remove: %v", err)
		}
		requireSame(t, snapshot(t, dev), before)
	})
}

// TestRemoveKeepsForeignState: an address and a rule someone else had put
// there before Apply survive Remove.
func TestRemoveKeepsForeignState(t *testing.T) {
	tp := nstest.NewTopology(t, nstest.Options{})
	dev, m := tp.Device, tp.Modems[0]
	dev.AddAddr(t, m.Interface, m.Addr4.String())
	b := netbind.NewBinder(netbind.Options{NetNS: dev.Path(), TableBase: 2000})
	tbl, err := b.Table("m")
	if err != nil {
		t.Fatal(err)
	}
	r := netlink.NewRule()
	r.Family, r.Table, r.Priority, r.OifName = unix.AF_INET, tbl, netbind.DefaultRulePriority, m.Interface
	if err := dev.Netlink().RuleAdd(r); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dev)
	a, err := b.Apply(context.Background(), netbind.Config{Interface: m.Interface, ModemID: "m", IPv4: m.IPv4(tp), Manage: netbind.ManageAlways})
	if err != nil {
		t.Fatal(err)
	}
	if a.Table != tbl {
		t.Errorf("table %d, Table() said %d", a.Table, tbl)
	}
	if err := b.Remove(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	requireSame(t, snapshot(t, dev), before)
}

func TestManagePolicy(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		configured  bool // the topology (standing in for NetworkManager) configured wwan0
		manage      netbind.Manage
		v6          bool
		wantManaged bool
		wantErr     error
	}{
		{"never, unconfigured", false, netbind.ManageNever, false, false, modem.ErrNoBearer},
		{"never, configured", true, netbind.ManageNever, true, false, nil},
		{"auto, configured by someone else", true, netbind.ManageAuto, true, false, nil},
		{"default is auto", true, "", false, false, nil},
		{"auto, unconfigured", false, netbind.ManageAuto, true, true, nil},
		{"always, unconfigured", false, netbind.ManageAlways, false, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := nstest.NewTopology(t, nstest.Options{ConfigureModems: tc.configured})
			m := tp.Modems[0]
			b := netbind.NewBinder(netbind.Options{NetNS: tp.Device.Path()})
			before := snapshot(t, tp.Device)
			c := netbind.Config{Interface: m.Interface, ModemID: "m", IPv4: m.IPv4(tp), Manage: tc.manage}
			if tc.v6 {
				c.IPv6 = m.IPv6(tp)
			}
			a, err := b.Apply(ctx, c)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("apply: %v, want %v", err, tc.wantErr)
			}
			if a.Managed != tc.wantManaged {
				t.Errorf("managed = %v, want %v", a.Managed, tc.wantManaged)
			}
			if !tc.wantManaged {
				requireSame(t, snapshot(t, tp.Device), before)
			}
			if err := b.Remove(ctx, a); err != nil {
				t.Fatal(err)
			}
			requireSame(t, snapshot(t, tp.Device), before)
		})
	}
	t.Run("never, configured without the family asked for", func(t *testing.T) {
		tp := nstest.NewTopology(t, nstest.Options{})
		m := tp.Modems[0]
		tp.Device.AddAddr(t, m.Interface, m.Addr4.String())
		b := netbind.NewBinder(netbind.Options{NetNS: tp.Device.Path()})
		_, err := b.Apply(ctx, netbind.Config{Interface: m.Interface, IPv6: m.IPv6(tp), Manage: netbind.ManageNever})
		var be *netbind.BearerError
		if !errors.As(err, &be) || !strings.Contains(be.Reason, "IPv6") {
			t.Errorf("apply: %v, want a BearerError about IPv6", err)
		}
	})
	t.Run("missing interface", func(t *testing.T) {
		tp := nstest.NewTopology(t, nstest.Options{})
		b := netbind.NewBinder(netbind.Options{NetNS: tp.Device.Path()})
		_, err := b.Apply(ctx, netbind.Config{Interface: "wwan9", ModemID: "m", IPv4: tp.Modems[0].IPv4(tp)})
		if !errors.Is(err, modem.ErrNoBearer) {
			t.Errorf("apply: %v, want no_bearer", err)
		}
	})
}

// TestIPv6OnlyBearer applies a bearer with no IPv4 at all (a NAT64
// carrier) and uses it: IPv6 goes out through the modem, IPv4 fails closed
// rather than taking eth0's IPv4 default route.
func TestIPv6OnlyBearer(t *testing.T) {
	bn := newBench(t, 1)
	m := bn.tp.Modems[0]
	p := bn.apply(t, 0, false, true)

	s := snapshot(t, bn.tp.Device)
	if got := linesWith(s.rules, fmt.Sprintf("fam=%d ", unix.AF_INET), "oif="+m.Interface); len(got) != 0 {
		t.Errorf("IPv4 rules for an IPv6-only bearer: %q", got)
	}
	if got := linesWith(s.addrs, m.Interface+" 100.64."); len(got) != 0 {
		t.Errorf("IPv4 address on an IPv6-only bearer: %q", got)
	}

	before := bn.eth0Tx(t)
	for _, u := range []string{url6(bn.tp), "http://" + testName + "/"} {
		got, hop, err := fetch(t, p, u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if got != m.Addr6.Addr().String() || hop.Interface != m.Interface {
			t.Errorf("%s: server saw %s over %q, want %s over %s", u, got, hop.Interface, m.Addr6.Addr(), m.Interface)
		}
	}
	_, _, err := fetch(t, p, url4(bn.tp))
	requireNoBearer(t, err)
	if _, _, err := fetch(t, p, "http://"+v4OnlyName+"/"); err == nil {
		t.Errorf("a name with only an IPv4 address was reached over an IPv6-only bearer")
	}
	if sent := bn.eth0Tx(t) - before; sent != 0 {
		t.Errorf("eth0 sent %d packets", sent)
	}
	if n := bn.ispDNS.Queries(); n != 0 {
		t.Errorf("ISP DNS got %d queries", n)
	}
}
