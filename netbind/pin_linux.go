package netbind

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// pinSys is the Linux state of a Pinned client.
type pinSys struct {
	// nsPath is the namespace sockets are made in ("" = our own). Each dial
	// opens it afresh: the Transport may still be dialing in the
	// background when Close runs, and a shared descriptor closed (and its
	// number reused) under a dial could switch the thread elsewhere.
	nsPath string
	dialer net.Dialer

	mu     sync.RWMutex // guards nl against Close
	nl     *netlink.Handle
	closed bool
}

func (p *Pinned) initSys(o ClientOptions) error {
	p.sys.nsPath = o.NetNS
	ns := netns.None()
	if o.NetNS != "" {
		var err error
		if ns, err = netns.GetFromPath(o.NetNS); err != nil {
			return fmt.Errorf("network namespace %s: %w", o.NetNS, err)
		}
		defer ns.Close()
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	p.sys.nl = h
	p.sys.dialer = net.Dialer{
		Timeout:   orDefault(o.DialTimeout, DefaultDialTimeout),
		KeepAlive: 30 * time.Second,
		// No dual-stack racing: it would dial on other goroutines, outside
		// the namespace and after our family check.
		FallbackDelay: -1,
		Control:       bindToDevice(p.iface),
	}
	return nil
}

func (p *Pinned) closeSys() error {
	p.sys.mu.Lock()
	defer p.sys.mu.Unlock()
	if !p.sys.closed {
		p.sys.closed = true
		p.sys.nl.Close()
	}
	return nil
}

// bindToDevice is the dialer's Control hook: SO_BINDTODEVICE before
// connect. A failure fails the dial; there is no other device to try.
func bindToDevice(ifname string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.BindToDevice(int(fd), ifname)
		}); err != nil {
			return fmt.Errorf("bind %s socket to %s: %w", network, ifname, err)
		}
		if serr != nil {
			return fmt.Errorf("bind %s socket to %s (SO_BINDTODEVICE): %w", network, ifname, serr)
		}
		return nil
	}
}

// bearer checks the interface: exists, up, carrier, some global address.
func (p *Pinned) bearer() (family, error) {
	p.sys.mu.RLock()
	defer p.sys.mu.RUnlock()
	if p.sys.closed {
		return 0, fmt.Errorf("pinned client for %s: %w", p.iface, net.ErrClosed)
	}
	l, err := linkByName(p.sys.nl, p.iface)
	if err != nil {
		return 0, err
	}
	if p.loopback && l.Attrs().Flags&net.FlagLoopback != 0 {
		if l.Attrs().Flags&net.FlagUp == 0 {
			return 0, &BearerError{Interface: p.iface, Reason: "down"}
		}
		return fam4 | fam6, nil
	}
	have, err := usableFamilies(p.sys.nl, l)
	if err != nil {
		return 0, err
	}
	if have == 0 {
		return 0, &BearerError{Interface: p.iface, Reason: "no global address"}
	}
	return have, nil
}

// dialSocket dials one address with the pinned dialer, creating the socket
// in the client's namespace.
func (p *Pinned) dialSocket(ctx context.Context, network, addr string) (net.Conn, error) {
	d := p.dialerFor(network, addr)
	if p.sys.nsPath == "" {
		return d.DialContext(ctx, network, addr)
	}
	ns, err := netns.GetFromPath(p.sys.nsPath)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", p.sys.nsPath, err)
	}
	defer ns.Close() // after the goroutine below has used it
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		// A thread of its own, switched into the namespace; it is thrown
		// away rather than reused if it cannot be switched back.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- result{nil, fmt.Errorf("current network namespace: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			done <- result{nil, fmt.Errorf("enter network namespace: %w", err)}
			return
		}
		c, err := d.DialContext(ctx, network, addr)
		if rerr := netns.Set(orig); rerr != nil {
			done <- result{c, err}
			return // still locked: the runtime discards the thread
		}
		runtime.UnlockOSThread()
		done <- result{c, err}
	}()
	r := <-done
	return r.c, r.err
}

// dialerFor returns the pinned dialer, bound to the bearer's own address of
// the destination's family when one is known.
func (p *Pinned) dialerFor(network, addr string) *net.Dialer {
	host, _, err := net.SplitHostPort(addr)
	ip, perr := netip.ParseAddr(host)
	if err != nil || perr != nil {
		return &p.sys.dialer
	}
	src := p.src4
	if ip.Unmap().Is6() {
		src = p.src6
	}
	if !src.IsValid() {
		return &p.sys.dialer
	}
	d := p.sys.dialer
	if strings.HasPrefix(network, "udp") {
		d.LocalAddr = &net.UDPAddr{IP: src.AsSlice()}
	} else {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	return &d
}

// boundDevice reads SO_BINDTODEVICE back from the connection's socket.
func boundDevice(c net.Conn) string {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return ""
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return ""
	}
	var name string
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		name, gerr = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
	}); err != nil || gerr != nil {
		return ""
	}
	return name
}
