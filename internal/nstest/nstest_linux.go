package nstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// runDir is where `ip netns` (and vishvananda/netns) keep named namespaces.
const runDir = "/run/netns"

var (
	probeOnce sync.Once
	probeErr  error
)

// RequireRoot skips the test, saying why, unless it runs as root on a kernel
// that lets it create network namespaces.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and veth interfaces")
	}
	probeOnce.Do(func() {
		probeErr = inFreshThread(func() error { return unix.Unshare(unix.CLONE_NEWNET) })
	})
	if probeErr != nil {
		t.Skipf("cannot create network namespaces here: %v", probeErr)
	}
}

// inFreshThread runs fn on a goroutine locked to its own OS thread and never
// unlocks it, so the runtime discards the thread (whatever namespace fn left
// it in) when the goroutine ends.
func inFreshThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- fn()
	}()
	return <-errc
}

// NS is a named network namespace created by a test.
type NS struct {
	Name string // e.g. "sp-dev-1a2b3c"; usable with `ip netns exec`
	h    netns.NsHandle
	nl   *netlink.Handle
}

// NewNS creates a namespace named "sp-<role>-<random>" with loopback up and
// kernel chatter that would disturb packet counting turned off (no IPv6 DAD,
// no router solicitations, IPv6 multicast reports sent at once rather than
// spread over seconds). It is deleted when the test ends.
func NewNS(t testing.TB, role string) *NS {
	t.Helper()
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("nstest: random name: %v", err)
	}
	name := "sp-" + role + "-" + hex.EncodeToString(rnd[:])
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		t.Fatalf("nstest: %v", err)
	}
	var h netns.NsHandle
	err := inFreshThread(func() error {
		var err error
		h, err = netns.NewNamed(name)
		return err
	})
	if err != nil {
		// NewNamed can leave the mount-point file behind when the bind fails.
		_ = os.Remove(filepath.Join(runDir, name))
		t.Fatalf("nstest: create namespace %s: %v", name, err)
	}
	n := &NS{Name: name, h: h}
	t.Cleanup(func() {
		if n.nl != nil {
			n.nl.Close()
		}
		h := n.h // not n.h itself: late Handle() readers must not race
		_ = h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("nstest: delete namespace %s: %v", name, err)
		}
	})
	n.nl, err = netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("nstest: netlink handle in %s: %v", name, err)
	}
	for _, kv := range [][2]string{
		{"net/ipv6/conf/all/accept_dad", "0"},
		{"net/ipv6/conf/default/accept_dad", "0"},
		{"net/ipv6/conf/all/accept_ra", "0"},
		{"net/ipv6/conf/default/accept_ra", "0"},
		{"net/ipv6/conf/all/router_solicitations", "0"},
		{"net/ipv6/conf/default/router_solicitations", "0"},
		{"net/ipv6/conf/all/mldv1_unsolicited_report_interval", "1"},
		{"net/ipv6/conf/default/mldv1_unsolicited_report_interval", "1"},
		{"net/ipv6/conf/all/mldv2_unsolicited_report_interval", "1"},
		{"net/ipv6/conf/default/mldv2_unsolicited_report_interval", "1"},
	} {
		n.Sysctl(t, kv[0], kv[1])
	}
	n.SetUp(t, "lo")
	return n
}

// Path is the namespace's file, for setns or netbind's NetNS options.
func (n *NS) Path() string { return filepath.Join(runDir, n.Name) }

// Handle is the namespace's file descriptor; it stays valid until the test ends.
func (n *NS) Handle() netns.NsHandle { return n.h }

// Netlink is a netlink handle bound to the namespace, safe for concurrent use.
func (n *NS) Netlink() *netlink.Handle { return n.nl }

// Do runs fn on an OS thread switched into the namespace. Sockets fn creates
// stay in the namespace after Do returns (a listener made here serves from
// any goroutine). The calling goroutine's thread is never switched; the
// helper thread is discarded if it cannot be switched back. Do opens the
// namespace by name each time, so a late call (a Transport still dialing
// in the background) fails once the namespace is deleted instead of using
// a closed descriptor.
func (n *NS) Do(fn func() error) error {
	target, err := netns.GetFromPath(n.Path())
	if err != nil {
		return fmt.Errorf("nstest: open %s: %w", n.Name, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("nstest: current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("nstest: enter %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the thread dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("nstest: leave %s: %w", n.Name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Command returns `ip netns exec <ns> name args...`: a subprocess in the
// namespace, with a mount namespace of its own (ip remounts /sys there).
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Listen opens a listener inside the namespace, closed when the test ends.
func (n *NS) Listen(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := n.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		t.Fatalf("nstest: listen %s %s in %s: %v", network, addr, n.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// ListenPacket opens a packet listener inside the namespace, closed when the
// test ends.
func (n *NS) ListenPacket(t testing.TB, network, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	err := n.Do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	})
	if err != nil {
		t.Fatalf("nstest: listen %s %s in %s: %v", network, addr, n.Name, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// Sysctl writes a per-namespace sysctl, key as a /proc/sys path
// ("net/ipv4/ip_forward") or dotted ("net.ipv4.ip_forward").
func (n *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	// /proc/sys/net resolves against the opening thread's namespace.
	err := n.Do(func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
	if err != nil {
		t.Fatalf("nstest: sysctl %s=%s in %s: %v", key, value, n.Name, err)
	}
}

// Link returns the named link of the namespace.
func (n *NS) Link(t testing.TB, ifname string) netlink.Link {
	t.Helper()
	l, err := n.nl.LinkByName(ifname)
	if err != nil {
		t.Fatalf("nstest: link %s in %s: %v", ifname, n.Name, err)
	}
	return l
}

// SetUp brings a link up.
func (n *NS) SetUp(t testing.TB, ifname string) {
	t.Helper()
	if err := n.nl.LinkSetUp(n.Link(t, ifname)); err != nil {
		t.Fatalf("nstest: %s up in %s: %v", ifname, n.Name, err)
	}
}

// SetDown brings a link down.
func (n *NS) SetDown(t testing.TB, ifname string) {
	t.Helper()
	if err := n.nl.LinkSetDown(n.Link(t, ifname)); err != nil {
		t.Fatalf("nstest: %s down in %s: %v", ifname, n.Name, err)
	}
}

// AddAddr adds an address ("100.64.0.2/24", "2001:db8::2/64"); IPv6
// addresses skip duplicate address detection so they are usable at once.
func (n *NS) AddAddr(t testing.TB, ifname, cidr string) {
	t.Helper()
	a := mustAddr(t, cidr)
	if err := n.nl.AddrAdd(n.Link(t, ifname), a); err != nil {
		t.Fatalf("nstest: add %s to %s in %s: %v", cidr, ifname, n.Name, err)
	}
}

// DelAddr removes an address added with AddAddr.
func (n *NS) DelAddr(t testing.TB, ifname, cidr string) {
	t.Helper()
	if err := n.nl.AddrDel(n.Link(t, ifname), mustAddr(t, cidr)); err != nil {
		t.Fatalf("nstest: delete %s from %s in %s: %v", cidr, ifname, n.Name, err)
	}
}

func mustAddr(t testing.TB, cidr string) *netlink.Addr {
	t.Helper()
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		t.Fatalf("nstest: address %q: %v", cidr, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// AddRoute adds a main-table route: dst is "default", "default6" or a
// prefix; gw may be empty for an on-link route through ifname.
func (n *NS) AddRoute(t testing.TB, dst, gw, ifname string) {
	t.Helper()
	r := &netlink.Route{LinkIndex: n.Link(t, ifname).Attrs().Index}
	switch dst {
	case "default":
		r.Dst = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	case "default6":
		r.Dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	default:
		p, err := netip.ParsePrefix(dst)
		if err != nil {
			t.Fatalf("nstest: route %q: %v", dst, err)
		}
		r.Dst = &net.IPNet{IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	}
	if gw != "" {
		g, err := netip.ParseAddr(gw)
		if err != nil {
			t.Fatalf("nstest: gateway %q: %v", gw, err)
		}
		r.Gw = g.AsSlice()
	} else {
		r.Scope = netlink.SCOPE_LINK
	}
	if err := n.nl.RouteAdd(r); err != nil {
		t.Fatalf("nstest: route %s via %q dev %s in %s: %v", dst, gw, ifname, n.Name, err)
	}
}

// TxPackets is the interface's transmitted-packet counter, read through
// netlink (the kernel's own statistics: everything the interface sent,
// whatever socket or protocol sent it).
func (n *NS) TxPackets(t testing.TB, ifname string) uint64 {
	t.Helper()
	s := n.Link(t, ifname).Attrs().Statistics
	if s == nil {
		t.Fatalf("nstest: no statistics for %s in %s", ifname, n.Name)
	}
	return s.TxPackets
}

// Veth creates a veth pair inside a (named aName) whose peer bName is
// created directly in b, and brings both ends up. The host namespace never
// sees either end.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(int(b.h)),
	}
	if err := a.nl.LinkAdd(v); err != nil {
		t.Fatalf("nstest: veth %s(%s) ⇄ %s(%s): %v", aName, a.Name, bName, b.Name, err)
	}
	a.SetUp(t, aName)
	b.SetUp(t, bName)
}

func (n *NS) addDefaultMetric(t testing.TB, gw netip.Addr, ifname string, metric int) {
	t.Helper()
	r := &netlink.Route{
		LinkIndex: n.Link(t, ifname).Attrs().Index,
		Dst:       &net.IPNet{IP: make(net.IP, gw.BitLen()/8), Mask: net.CIDRMask(0, gw.BitLen())},
		Gw:        gw.AsSlice(),
		Priority:  metric,
	}
	if err := n.nl.RouteAdd(r); err != nil {
		t.Fatalf("nstest: default via %s dev %s metric %d in %s: %v", gw, ifname, metric, n.Name, err)
	}
}

// DialContext returns a dial function for http.Transport or net.Resolver
// whose sockets d creates inside the namespace. Neither http.Transport nor
// the Go resolver dial on the caller's goroutine, so wrapping the dial
// itself is the only way to keep their sockets in the namespace. d must not
// race dual-stack attempts on other goroutines: FallbackDelay is forced
// negative on a copy.
func (n *NS) DialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dd := *d
	dd.FallbackDelay = -1
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := n.Do(func() (err error) {
			c, err = dd.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}
