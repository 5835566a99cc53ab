package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The delay line: one AF_PACKET socket per middle interface of a spliced
// link, each frame copied to the other side once its one-way delay has
// passed, one bounded FIFO per direction. Layer 2 only, so addresses, TCP,
// TLS and DNS pass untouched and the operator still sees the SIM's address.
//
// Two traps (spec/testing.md): without PACKET_VNET_HDR the checksum and GSO
// state of a frame is lost and TCP stalls while ping passes; and the frames
// a socket sends itself come back as PACKET_OUTGOING and would loop.

const (
	vnetHdrLen = 10 // struct virtio_net_hdr
	// maxFrame holds the largest GSO frame a veth hands over (64 KiB by
	// default) with room to spare; a longer one is counted and dropped.
	maxFrame   = 256 << 10
	queueLimit = 8192 // frames waiting per direction; tail drop beyond
)

// delaySpec is one spliced link: frames read on A go out on B after Delay,
// and back.
type delaySpec struct {
	A, B  string
	Delay time.Duration
}

func (d delaySpec) String() string { return fmt.Sprintf("%s,%s,%s", d.A, d.B, d.Delay) }

func parseDelaySpec(s string) (delaySpec, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return delaySpec{}, fmt.Errorf("link %q: want IFACE_A,IFACE_B,DELAY", s)
	}
	d, err := time.ParseDuration(parts[2])
	if err != nil || d < 0 {
		return delaySpec{}, fmt.Errorf("link %q: bad delay", s)
	}
	return delaySpec{A: parts[0], B: parts[1], Delay: d}, nil
}

// DelayStats is what the delay line reports when it stops.
type DelayStats struct {
	Frames    uint64  `json:"frames"`      // forwarded
	Bytes     uint64  `json:"bytes"`       // forwarded, virtio header excluded
	Dropped   uint64  `json:"dropped"`     // a direction's queue was full
	Truncated uint64  `json:"truncated"`   // longer than maxFrame
	SendErrs  uint64  `json:"send_errs"`   // write to the far side failed
	LateP50us float64 `json:"late_p50_us"` // how long after its due time a frame left
	LateP99us float64 `json:"late_p99_us"`
	LateMaxus float64 `json:"late_max_us"`
}

type frame struct {
	due time.Time
	b   []byte
}

type packetSock struct {
	name string
	f    *os.File
	rc   syscall.RawConn
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openPacket opens a raw packet socket on ifname with virtio-net headers,
// ignoring its own outgoing frames.
func openPacket(ifname string) (*packetSock, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("delay line: %w", err)
	}
	// Protocol 0 receives nothing until bind names the interface, so no
	// frame of another interface slips in between.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("delay line: packet socket for %s: %w", ifname, err)
	}
	fail := func(what string, err error) (*packetSock, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("delay line: %s on %s: %w", what, ifname, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fail("PACKET_VNET_HDR", err)
	}
	// Kernels before 4.20 lack it; the receive loop checks the packet
	// type as well.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	for _, o := range []int{unix.SO_RCVBUFFORCE, unix.SO_SNDBUFFORCE} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o, 8<<20); err != nil {
			return fail("socket buffer", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+ifname)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("delay line: %s: %w", ifname, err)
	}
	return &packetSock{name: ifname, f: f, rc: rc}, nil
}

// delayLine forwards frames between the sockets of its links.
type delayLine struct {
	frames, bytes, dropped, truncated, sendErrs atomic.Uint64

	mu   sync.Mutex
	late []float64 // µs, a bounded sample
	wg   sync.WaitGroup
}

const lateSamples = 1 << 18

func (d *delayLine) noteLate(us float64) {
	d.mu.Lock()
	if len(d.late) < lateSamples {
		d.late = append(d.late, us)
	}
	d.mu.Unlock()
}

// direction copies from → to after delay.
func (d *delayLine) direction(from, to *packetSock, delay time.Duration) {
	q := make(chan frame, queueLimit)
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		defer close(q)
		buf := make([]byte, maxFrame)
		for {
			var n int
			var sa unix.Sockaddr
			var rerr error
			err := from.rc.Read(func(fd uintptr) bool {
				n, sa, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC)
				return rerr != unix.EAGAIN
			})
			now := time.Now()
			if err != nil {
				return // closed
			}
			if rerr != nil {
				if rerr == unix.EINTR {
					continue
				}
				return
			}
			if ll, ok := sa.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			if n > len(buf) {
				d.truncated.Add(1)
				continue
			}
			if n <= vnetHdrLen {
				continue
			}
			select {
			case q <- frame{due: now.Add(delay), b: slices.Clone(buf[:n])}:
			default:
				d.dropped.Add(1)
			}
		}
	}()
	go func() {
		defer d.wg.Done()
		for f := range q {
			if w := time.Until(f.due); w > 0 {
				time.Sleep(w)
			}
			d.noteLate(float64(time.Since(f.due).Microseconds()))
			var werr error
			err := to.rc.Write(func(fd uintptr) bool {
				_, werr = unix.Write(int(fd), f.b)
				return werr != unix.EAGAIN
			})
			if err != nil {
				return // closed
			}
			if werr != nil {
				d.sendErrs.Add(1)
				continue
			}
			d.frames.Add(1)
			d.bytes.Add(uint64(len(f.b) - vnetHdrLen))
		}
	}()
}

func (d *delayLine) stats() DelayStats {
	d.mu.Lock()
	late := slices.Clone(d.late)
	d.mu.Unlock()
	s := DelayStats{Frames: d.frames.Load(), Bytes: d.bytes.Load(), Dropped: d.dropped.Load(),
		Truncated: d.truncated.Load(), SendErrs: d.sendErrs.Load()}
	if len(late) > 0 {
		slices.Sort(late)
		s.LateP50us, s.LateP99us, s.LateMaxus = quantile(late, 0.5), quantile(late, 0.99), late[len(late)-1]
	}
	return s
}

// runDelayLine is `bench delayline -netns PATH -link A,B,DELAY ...`: it
// enters the namespace, opens its sockets, prints "ready" and forwards until
// SIGTERM, SIGINT or the end of stdin, then prints its DelayStats as JSON.
func runDelayLine(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench delayline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nsPath := fs.String("netns", "", "network namespace to run in (a /run/netns path)")
	var specs []delaySpec
	fs.Func("link", "IFACE_A,IFACE_B,DELAY (repeatable)", func(s string) error {
		d, err := parseDelaySpec(s)
		if err == nil {
			specs = append(specs, d)
		}
		return err
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(specs) == 0 {
		fmt.Fprintln(stderr, "bench delayline: no -link")
		return 2
	}
	socks, err := openInNS(*nsPath, specs)
	if err != nil {
		fmt.Fprintln(stderr, "bench delayline:", err)
		return 1
	}
	d := &delayLine{}
	for i, s := range specs {
		a, b := socks[2*i], socks[2*i+1]
		d.direction(a, b, s.Delay)
		d.direction(b, a, s.Delay)
	}
	fmt.Fprintln(stdout, "ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(eof) }()
	select {
	case <-sig:
	case <-eof:
	}
	for _, s := range socks {
		s.f.Close()
	}
	d.wg.Wait()
	_ = json.NewEncoder(stdout).Encode(d.stats())
	return 0
}

// openInNS opens both sockets of every link from a thread inside the
// namespace; the sockets stay there whatever thread uses them later.
func openInNS(nsPath string, specs []delaySpec) ([]*packetSock, error) {
	type result struct {
		socks []*packetSock
		err   error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies in the namespace
		if nsPath != "" {
			fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				done <- result{err: fmt.Errorf("open %s: %w", nsPath, err)}
				return
			}
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
			if err != nil {
				done <- result{err: fmt.Errorf("enter %s: %w", nsPath, err)}
				return
			}
		}
		var socks []*packetSock
		for _, s := range specs {
			for _, name := range []string{s.A, s.B} {
				ps, err := openPacket(name)
				if err != nil {
					for _, o := range socks {
						o.f.Close()
					}
					done <- result{err: err}
					return
				}
				socks = append(socks, ps)
			}
		}
		done <- result{socks: socks}
	}()
	r := <-done
	if r.err != nil {
		return nil, r.err
	}
	if len(r.socks) != 2*len(specs) {
		return nil, errors.New("socket count mismatch")
	}
	return r.socks, nil
}
