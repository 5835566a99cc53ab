package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/simproof/simproof/internal/nstest"
)

// benchNet is nstest's topology with a delay line spliced into every wwan
// link and into eth0's link:
//
//	device wwanN ⇄ p-wwanN [delay ns] p-c-wwanN ⇄ c-wwanN carrier   (wwanDelay each way)
//	device eth0  ⇄ p-eth0  [delay ns] p-i-eth0  ⇄ i-eth0  ISP       (ethDelay each way)
//
// Everything above layer 2 is nstest's: the same addresses and routes.
type benchNet struct {
	tp                  *nstest.Topology
	mid                 *nstest.NS
	wwanDelay, ethDelay time.Duration
	line                *delayProc
}

func buildNet(h *harness, modems int, wwanDelay, ethDelay time.Duration) (*benchNet, error) {
	var n *benchNet
	err := h.guard(func() error {
		tp := nstest.NewTopology(h, nstest.Options{Modems: modems})
		mid := nstest.NewNS(h, "dly")
		// The middle namespace only moves frames: no IPv6 chatter of its own.
		mid.Sysctl(h, "net/ipv6/conf/all/disable_ipv6", "1")
		mid.Sysctl(h, "net/ipv6/conf/default/disable_ipv6", "1")
		var specs []delaySpec
		for _, m := range tp.Modems {
			a, b, err := splice(h, tp.Device, m.Interface, tp.Carrier, m.Peer, mid)
			if err != nil {
				return err
			}
			specs = append(specs, delaySpec{A: a, B: b, Delay: wwanDelay})
		}
		a, b, err := splice(h, tp.Device, tp.Eth0, tp.ISP, "i-"+tp.Eth0, mid)
		if err != nil {
			return err
		}
		specs = append(specs, delaySpec{A: a, B: b, Delay: ethDelay})
		line, err := startDelay(h, mid.Path(), specs)
		if err != nil {
			return err
		}
		n = &benchNet{tp: tp, mid: mid, wwanDelay: wwanDelay, ethDelay: ethDelay, line: line}
		return nil
	})
	return n, err
}

// splice replaces the veth aName(a) ⇄ bName(b) by aName(a) ⇄ p-aName(mid)
// and p-bName(mid) ⇄ bName(b), keeping both ends' addresses and main-table
// routes. It returns the two middle interfaces.
func splice(h *harness, a *nstest.NS, aName string, b *nstest.NS, bName string, mid *nstest.NS) (string, string, error) {
	type saved struct {
		addrs  []netlink.Addr
		routes []netlink.Route
	}
	save := func(ns *nstest.NS, ifname string) (saved, error) {
		l := ns.Link(h, ifname)
		var s saved
		addrs, err := ns.Netlink().AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return s, fmt.Errorf("addresses of %s: %w", ifname, err)
		}
		for _, ad := range addrs {
			if ad.IP.IsLinkLocalUnicast() {
				continue // the kernel makes a new one
			}
			s.addrs = append(s.addrs, ad)
		}
		routes, err := ns.Netlink().RouteListFiltered(netlink.FAMILY_ALL,
			&netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
		if err != nil {
			return s, fmt.Errorf("routes of %s: %w", ifname, err)
		}
		for _, r := range routes {
			if r.Protocol == unix.RTPROT_KERNEL {
				continue // comes back with the address
			}
			s.routes = append(s.routes, r)
		}
		return s, nil
	}
	restore := func(ns *nstest.NS, ifname string, s saved) error {
		l := ns.Link(h, ifname)
		for _, ad := range s.addrs {
			na := &netlink.Addr{IPNet: ad.IPNet}
			if ad.IP.To4() == nil {
				na.Flags = unix.IFA_F_NODAD
			}
			if err := ns.Netlink().AddrAdd(l, na); err != nil {
				return fmt.Errorf("re-add %s to %s: %w", ad.IPNet, ifname, err)
			}
		}
		for _, r := range s.routes {
			nr := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: r.Dst, Gw: r.Gw, Src: r.Src, Priority: r.Priority,
				Scope: r.Scope, Table: r.Table, Protocol: r.Protocol, Type: r.Type, Family: r.Family}
			if err := ns.Netlink().RouteAdd(nr); err != nil {
				return fmt.Errorf("re-add route %s via %s dev %s: %w", r.Dst, r.Gw, ifname, err)
			}
		}
		return nil
	}
	sa, err := save(a, aName)
	if err != nil {
		return "", "", err
	}
	sb, err := save(b, bName)
	if err != nil {
		return "", "", err
	}
	if err := a.Netlink().LinkDel(a.Link(h, aName)); err != nil {
		return "", "", fmt.Errorf("delete %s: %w", aName, err)
	}
	ma, mb := "p-"+aName, "p-"+bName
	nstest.Veth(h, a, aName, mid, ma)
	nstest.Veth(h, mid, mb, b, bName)
	for _, ifn := range []string{ma, mb} {
		// Frames addressed to the far end must reach the socket whatever
		// the veth thinks of their destination MAC.
		if err := mid.Netlink().SetPromiscOn(mid.Link(h, ifn)); err != nil {
			return "", "", fmt.Errorf("promisc %s: %w", ifn, err)
		}
	}
	if err := restore(a, aName, sa); err != nil {
		return "", "", err
	}
	if err := restore(b, bName, sb); err != nil {
		return "", "", err
	}
	return ma, mb, nil
}

// delayProc is the delay line running as `bench delayline` in the middle
// namespace.
type delayProc struct {
	cmd   *exec.Cmd
	out   *bufio.Reader
	stats *DelayStats
}

func startDelay(h *harness, nsPath string, specs []delaySpec) (*delayProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"delayline", "-netns", nsPath}
	for _, s := range specs {
		args = append(args, "-link", s.String())
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the delay line: %w", err)
	}
	d := &delayProc{cmd: cmd, out: bufio.NewReader(stdout)}
	h.Cleanup(func() {
		d.stop()
		stdin.Close()
	})
	ready := make(chan error, 1)
	go func() {
		line, err := d.out.ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("said %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			return nil, fmt.Errorf("delay line: %w", err)
		}
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("delay line: not ready after 10 s")
	}
	return d, nil
}

// cpu is the delay line's CPU time so far (user + system).
func (d *delayProc) cpu() time.Duration {
	c, err := procCPU(d.cmd.Process.Pid)
	if err != nil {
		return 0
	}
	return c
}

// stop ends the delay line and returns what it reported.
func (d *delayProc) stop() DelayStats {
	if d.stats != nil {
		return *d.stats
	}
	d.stats = &DelayStats{}
	_ = d.cmd.Process.Signal(unix.SIGTERM)
	done := make(chan struct{})
	go func() {
		_ = json.NewDecoder(d.out).Decode(d.stats)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
	}
	_ = d.cmd.Wait()
	return *d.stats
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100

// procCPU is utime+stime of a process, from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(raw))
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/PID/stat line; the command name (field 2) may hold spaces and
// parentheses, so fields are counted from its last ')'.
func parseStatCPU(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state).
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the name", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: bad utime/stime %q %q", f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// procStatusKB reads a "Key:  N kB" line of /proc/PID/status.
func procStatusKB(pid int, key string) (int64, error) {
	return procStatusKBFile(fmt.Sprintf("/proc/%d/status", pid), key)
}

func procStatusKBFile(path, key string) (int64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

// bindDevice is a net.Dialer Control hook pinning a socket to ifname, for
// the delay line's own check.
func bindDevice(ifname string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), ifname) }); err != nil {
			return err
		}
		return serr
	}
}
