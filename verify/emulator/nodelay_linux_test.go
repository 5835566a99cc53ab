package emulator

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

func noDelay(t *testing.T, c net.Conn) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) { v, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return v
}

// nagleListener hands out conns with Nagle's algorithm back on, standing in
// for a caller's listener that does not keep Go's default.
type nagleListener struct{ net.Listener }

func (l nagleListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		err = c.(*net.TCPConn).SetNoDelay(false)
	}
	return c, err
}

// Go sets TCP_NODELAY on accepted conns by default; the emulator's listener
// sets it explicitly, so it holds even behind a listener that cleared it.
func TestAcceptedConnsHaveNoDelay(t *testing.T) {
	for _, c := range []struct {
		name string
		wrap func(net.Listener) net.Listener
		want bool
	}{
		{"go default", func(l net.Listener) net.Listener { return l }, true},
		{"cleared", func(l net.Listener) net.Listener { return nagleListener{l} }, false},
		{"emulator over cleared", func(l net.Listener) net.Listener { return noDelayListener{nagleListener{l}} }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			d, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			conn, err := c.wrap(l).Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if got := noDelay(t, conn) != 0; got != c.want {
				t.Errorf("TCP_NODELAY %v, want %v", got, c.want)
			}
		})
	}
}
