package netbind

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// record is what a Binder added to one interface, so Remove takes back that
// and nothing else. Addresses and routes die with the link; rules (matched
// by interface name) outlive it.
type record struct {
	link    int // ifindex the addresses and routes were added to
	table   int
	addrs   []netip.Prefix
	routes  []netlink.Route
	rules   []netlink.Rule
	origMTU int  // MTU before we changed it; 0 = unchanged
	setUp   bool // we brought the link up
}

// handle opens a netlink handle in the configured namespace.
func handleAt(path string) (*netlink.Handle, error) {
	if path == "" {
		return netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
}

// dumpRetries bounds retries of netlink dumps the kernel interrupted
// because the table changed under them.
const dumpRetries = 5

func dump[T any](f func() ([]T, error)) ([]T, error) {
	var err error
	for range dumpRetries {
		var v []T
		if v, err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return nil, err
}

// linkByName finds the interface; a missing one is a BearerError.
func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, &BearerError{Interface: name, Reason: "no such interface"}
		}
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	return l, nil
}

// usableFamilies checks that the link is up with carrier and returns the
// families of its usable global addresses (not tentative, not failed DAD).
func usableFamilies(h *netlink.Handle, l netlink.Link) (family, error) {
	a := l.Attrs()
	if a.Flags&net.FlagUp == 0 {
		return 0, &BearerError{Interface: a.Name, Reason: "down"}
	}
	if a.RawFlags&unix.IFF_LOWER_UP == 0 {
		return 0, &BearerError{Interface: a.Name, Reason: "no carrier"}
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return 0, fmt.Errorf("addresses of %s: %w", a.Name, err)
	}
	var have family
	for _, ad := range addrs {
		if p, ok := usableAddr(ad); ok {
			have |= familyOf(p.Addr())
		}
	}
	return have, nil
}

func usableAddr(ad netlink.Addr) (netip.Prefix, bool) {
	if ad.IPNet == nil || ad.Scope != unix.RT_SCOPE_UNIVERSE ||
		ad.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(ad.IP)
	if !ok || !ip.Unmap().IsGlobalUnicast() {
		return netip.Prefix{}, false
	}
	ones, _ := ad.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

// Apply brings the interface to the bearer's configuration according to
// c.Manage. Unmanaged, it only verifies the interface is up with an address
// of each configured family (any address when none is configured). On error
// whatever was already added stays recorded, so Remove still cleans it up.
func (b *Binder) Apply(ctx context.Context, c Config) (Applied, error) {
	out := Applied{Interface: c.Interface}
	if err := b.opts.validate(); err != nil {
		return out, fmt.Errorf("netbind: %w", err)
	}
	if c.Interface == "" {
		return out, errors.New("netbind: apply: no interface")
	}
	d, err := c.parse()
	if err != nil {
		return out, fmt.Errorf("apply %s: %w", c.Interface, err)
	}
	manage := c.Manage
	switch manage {
	case "":
		manage = ManageAuto
	case ManageAuto, ManageAlways, ManageNever:
	default:
		return out, fmt.Errorf("apply %s: manage_interface %q: want auto, always or never", c.Interface, c.Manage)
	}
	if manage != ManageNever && d.want == 0 {
		return out, fmt.Errorf("apply %s: no IPv4 or IPv6 address to configure", c.Interface)
	}
	if err := ctx.Err(); err != nil {
		return out, err
	}

	h, err := handleAt(b.opts.NetNS)
	if err != nil {
		return out, fmt.Errorf("apply %s: %w", c.Interface, err)
	}
	defer h.Close()
	b.mu.Lock()
	defer b.mu.Unlock()

	link, err := linkByName(h, c.Interface)
	if err != nil {
		return out, err
	}
	rec := b.owned[c.Interface]
	if rec != nil && rec.link != link.Attrs().Index {
		// The interface was recreated (modem replugged): the old link's
		// addresses and routes died with it; the rules, by name, did not.
		rec.link, rec.addrs, rec.routes, rec.origMTU, rec.setUp = link.Attrs().Index, nil, nil, 0, false
	}
	if manage == ManageAuto {
		foreign, err := foreignAddress(h, link, rec)
		if err != nil {
			return out, fmt.Errorf("apply %s: %w", c.Interface, err)
		}
		if foreign {
			manage = ManageNever
		}
	}
	if manage == ManageNever {
		have, err := usableFamilies(h, link)
		if err != nil {
			return out, err
		}
		return out, requireFamilies(c.Interface, have, d.want)
	}

	table := c.Table
	if table == 0 {
		if c.ModemID == "" {
			return out, fmt.Errorf("apply %s: no table and no modem ID to pick one", c.Interface)
		}
		s, err := b.slotLocked(c.ModemID)
		if err != nil {
			return out, fmt.Errorf("apply %s: %w", c.Interface, err)
		}
		table = b.opts.TableBase + s
	}
	if table <= 0 || (table >= 253 && table <= 255) {
		return out, fmt.Errorf("apply %s: table %d is reserved", c.Interface, table)
	}
	if other, ok := b.tables[table]; ok && other != c.Interface {
		return out, fmt.Errorf("apply %s: table %d already used by %s", c.Interface, table, other)
	}
	if rec == nil {
		rec = &record{link: link.Attrs().Index}
		b.owned[c.Interface] = rec
	}
	if rec.table != 0 && rec.table != table {
		delete(b.tables, rec.table)
	}
	rec.table = table
	b.tables[table] = c.Interface
	out.Table, out.Managed = table, true
	if err := b.converge(ctx, h, link, rec, d); err != nil {
		return out, fmt.Errorf("apply %s: %w", c.Interface, err)
	}
	return out, nil
}

// Bounds of waitLocalRoute.
const (
	localRoutePolls = 100
	localRoutePoll  = 5 * time.Millisecond
)

// waitLocalRoute waits, bounded, for the kernel to install the local route
// of a new IPv6 address: it does so from a work queue, and until then the
// address's incoming packets are not delivered (a first SYN-ACK would be
// lost and cost a retransmission). Not finding it is not an error: the
// link may lack carrier, and the route follows when it comes.
func waitLocalRoute(ctx context.Context, h *netlink.Handle, a netip.Addr) {
	filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Dst: ipNet(netip.PrefixFrom(a, a.BitLen()))}
	for range localRoutePolls {
		rs, err := h.RouteListFiltered(netlink.FAMILY_V6, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
		if err != nil || len(rs) > 0 || ctx.Err() != nil {
			return
		}
		time.Sleep(localRoutePoll)
	}
}

// foreignAddress reports whether the link has a global address this Binder
// did not add.
func foreignAddress(h *netlink.Handle, l netlink.Link, rec *record) (bool, error) {
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return false, err
	}
	for _, ad := range addrs {
		if p, ok := usableAddr(ad); ok && (rec == nil || !slices.Contains(rec.addrs, p)) {
			return true, nil
		}
	}
	return false, nil
}

func (b *Binder) converge(ctx context.Context, h *netlink.Handle, link netlink.Link, rec *record, d desired) error {
	attrs := link.Attrs()
	if d.mtu != 0 && attrs.MTU != d.mtu {
		if err := h.LinkSetMTU(link, d.mtu); err != nil {
			return fmt.Errorf("set MTU %d: %w", d.mtu, err)
		}
		if rec.origMTU == 0 {
			rec.origMTU = attrs.MTU
		}
	}
	if attrs.Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("set up: %w", err)
		}
		rec.setUp = true
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	var wantAddrs []netip.Prefix
	for _, ba := range []*bearerAddr{d.v4, d.v6} {
		if ba != nil {
			wantAddrs = append(wantAddrs, ba.prefix)
		}
	}
	routes := wantRoutes(attrs.Index, rec.table, d)
	rules := wantRules(attrs.Name, rec.table, b.opts.RulePriority, d)
	// First drop what an earlier Apply added and this configuration no
	// longer wants (a new bearer address, another table), dependants first.
	// Old addresses go before new ones arrive: deleting a primary IPv4
	// address also deletes the secondaries of its subnet.
	var errs []error
	rec.rules = slices.DeleteFunc(rec.rules, func(o netlink.Rule) bool {
		if slices.ContainsFunc(rules, func(r netlink.Rule) bool { return sameRule(o, r) }) {
			return false
		}
		err := delRule(h, o)
		errs = append(errs, err)
		return err == nil
	})
	rec.routes = slices.DeleteFunc(rec.routes, func(o netlink.Route) bool {
		if slices.ContainsFunc(routes, func(r netlink.Route) bool { return sameRoute(o, r) }) {
			return false
		}
		err := delRoute(h, o)
		errs = append(errs, err)
		return err == nil
	})
	rec.addrs = slices.DeleteFunc(rec.addrs, func(p netip.Prefix) bool {
		if slices.Contains(wantAddrs, p) {
			return false
		}
		err := delAddr(h, link, p)
		errs = append(errs, err)
		return err == nil
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}

	// Addresses before routes: routes name them as preferred source.
	cur, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(link, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	for _, p := range wantAddrs {
		if slices.ContainsFunc(cur, func(a netlink.Addr) bool { q, ok := usableAddr(a); return ok && q == p }) {
			continue // present: ours from before, or someone else's to leave alone
		}
		if err := h.AddrReplace(link, nlAddr(p)); err != nil {
			return fmt.Errorf("add address %s: %w", p, err)
		}
		rec.addrs = append(rec.addrs, p)
		if p.Addr().Is6() {
			waitLocalRoute(ctx, h, p.Addr())
		}
	}

	for i := range routes {
		if err := h.RouteReplace(&routes[i]); err != nil {
			return fmt.Errorf("route %s table %d: %w", routeString(routes[i]), rec.table, err)
		}
		// Record the route as now installed: deleting it later must
		// name its current preferred source, or the kernel finds no match.
		if j := slices.IndexFunc(rec.routes, func(r netlink.Route) bool { return sameRoute(r, routes[i]) }); j >= 0 {
			rec.routes[j] = routes[i]
		} else {
			rec.routes = append(rec.routes, routes[i])
		}
	}

	for _, r := range rules {
		if slices.ContainsFunc(rec.rules, func(o netlink.Rule) bool { return sameRule(o, r) }) {
			continue
		}
		exists, err := ruleExists(h, r)
		if err != nil {
			return err
		}
		if exists {
			continue // someone else's identical rule: not ours to remove
		}
		if err := h.RuleAdd(&r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add %s: %w", ruleString(r), err)
		}
		rec.rules = append(rec.rules, r)
	}
	return nil
}

// Remove takes back what Apply added to a.Interface: rules, table routes,
// addresses, the MTU change and bringing the link up. Things already gone
// (an unplugged modem's link) are not errors. What fails stays recorded for
// another Remove.
func (b *Binder) Remove(ctx context.Context, a Applied) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	rec := b.owned[a.Interface]
	if rec == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h, err := handleAt(b.opts.NetNS)
	if err != nil {
		return fmt.Errorf("remove %s: %w", a.Interface, err)
	}
	defer h.Close()

	var errs []error
	rec.rules = slices.DeleteFunc(rec.rules, func(r netlink.Rule) bool {
		err := delRule(h, r)
		errs = append(errs, err)
		return err == nil
	})
	link, err := h.LinkByName(a.Interface)
	var nf netlink.LinkNotFoundError
	switch {
	case errors.As(err, &nf) || (err == nil && link.Attrs().Index != rec.link):
		// Gone or recreated: its addresses and routes went with the old link.
		rec.routes, rec.addrs, rec.origMTU, rec.setUp = nil, nil, 0, false
	case err != nil:
		errs = append(errs, fmt.Errorf("link: %w", err))
	default:
		rec.routes = slices.DeleteFunc(rec.routes, func(r netlink.Route) bool {
			err := delRoute(h, r)
			errs = append(errs, err)
			return err == nil
		})
		rec.addrs = slices.DeleteFunc(rec.addrs, func(p netip.Prefix) bool {
			err := delAddr(h, link, p)
			errs = append(errs, err)
			return err == nil
		})
		if rec.origMTU != 0 {
			if err := h.LinkSetMTU(link, rec.origMTU); err != nil {
				errs = append(errs, fmt.Errorf("restore MTU %d: %w", rec.origMTU, err))
			} else {
				rec.origMTU = 0
			}
		}
		if rec.setUp {
			if err := h.LinkSetDown(link); err != nil {
				errs = append(errs, fmt.Errorf("set down: %w", err))
			} else {
				rec.setUp = false
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove %s: %w", a.Interface, err)
	}
	delete(b.owned, a.Interface)
	if b.tables[rec.table] == a.Interface {
		delete(b.tables, rec.table)
	}
	return nil
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Is6() {
		// A bearer address is the network's to give; duplicate detection
		// on a point-to-point link only delays it by seconds.
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func nlFamily(f family) int {
	if f == fam4 {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// wantRoutes is the modem's table: the bearer's subnet on-link and a default
// route through the gateway, or on-link when there is none (point-to-point).
func wantRoutes(ifindex, table int, d desired) []netlink.Route {
	var out []netlink.Route
	for _, ba := range []*bearerAddr{d.v4, d.v6} {
		if ba == nil {
			continue
		}
		a := ba.prefix.Addr()
		fam := nlFamily(familyOf(a))
		if ba.prefix.Bits() < a.BitLen() {
			out = append(out, netlink.Route{LinkIndex: ifindex, Table: table, Family: fam,
				Dst: ipNet(ba.prefix.Masked()), Src: a.AsSlice(), Scope: netlink.SCOPE_LINK,
				Protocol: unix.RTPROT_STATIC})
		}
		def := netlink.Route{LinkIndex: ifindex, Table: table, Family: fam,
			Dst: ipNet(netip.PrefixFrom(netip.IPv6Unspecified(), 0)), Src: a.AsSlice(),
			Protocol: unix.RTPROT_STATIC}
		if a.Is4() {
			def.Dst = ipNet(netip.PrefixFrom(netip.IPv4Unspecified(), 0))
		}
		if g := ba.gateway; g.IsValid() {
			def.Gw = g.AsSlice()
			if !ba.prefix.Contains(g) && !g.IsLinkLocalUnicast() {
				def.Flags = int(netlink.FLAG_ONLINK) // modems hand out gateways outside the prefix
			}
		} else {
			def.Scope = netlink.SCOPE_LINK
		}
		out = append(out, def)
	}
	return out
}

// wantRules select the modem's table for sockets bound to the interface
// (oif, what the pinned client uses) and for packets from its address
// (unbound sockets that picked it; also what makes strict reverse-path
// filtering accept the replies).
func wantRules(ifname string, table, prio int, d desired) []netlink.Rule {
	var out []netlink.Rule
	for _, ba := range []*bearerAddr{d.v4, d.v6} {
		if ba == nil {
			continue
		}
		a := ba.prefix.Addr()
		fam := nlFamily(familyOf(a))
		oif := netlink.NewRule()
		oif.Family, oif.Table, oif.Priority, oif.OifName = fam, table, prio, ifname
		from := netlink.NewRule()
		from.Family, from.Table, from.Priority = fam, table, prio+1
		from.Src = ipNet(netip.PrefixFrom(a, a.BitLen()))
		out = append(out, *oif, *from)
	}
	return out
}

func sameRoute(a, b netlink.Route) bool {
	return a.Table == b.Table && a.Family == b.Family && a.Dst.String() == b.Dst.String()
}

func sameRule(a, b netlink.Rule) bool {
	return a.Family == b.Family && a.Table == b.Table && a.Priority == b.Priority &&
		a.OifName == b.OifName && a.Src.String() == b.Src.String()
}

func ruleExists(h *netlink.Handle, r netlink.Rule) (bool, error) {
	rules, err := dump(func() ([]netlink.Rule, error) { return h.RuleList(r.Family) })
	if err != nil {
		return false, fmt.Errorf("list rules: %w", err)
	}
	for _, o := range rules {
		if sameRule(o, r) && o.IifName == "" && o.Dst == nil && o.Mark == 0 && !o.Invert {
			return true, nil
		}
	}
	return false, nil
}

// delRule, delRoute and delAddr treat "already gone" as done.
func delRule(h *netlink.Handle, r netlink.Rule) error {
	if err := h.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete %s: %w", ruleString(r), err)
	}
	return nil
}

func delRoute(h *netlink.Handle, r netlink.Route) error {
	if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete route %s table %d: %w", routeString(r), r.Table, err)
	}
	return nil
}

func delAddr(h *netlink.Handle, l netlink.Link, p netip.Prefix) error {
	if err := h.AddrDel(l, nlAddr(p)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete address %s: %w", p, err)
	}
	return nil
}

func routeString(r netlink.Route) string {
	s := r.Dst.String()
	if r.Gw != nil {
		s += " via " + r.Gw.String()
	}
	return s
}

func ruleString(r netlink.Rule) string {
	sel := "oif " + r.OifName
	if r.Src != nil {
		sel = "from " + r.Src.String()
	}
	return fmt.Sprintf("rule %d %s lookup %d", r.Priority, sel, r.Table)
}
