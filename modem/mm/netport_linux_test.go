package mm_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/simproof/simproof/internal/mmtest"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/modem/mm"
	"github.com/simproof/simproof/modem/sim"
)

// ubloxShim is a pseudo-terminal in front of a modem/sim simulator that
// adds the few u-blox commands ModemManager's u-blox plugin needs for a
// net-port bearer (modem/sim speaks the generic 27.007 dialogue only).
// Every other line goes to the simulator, every byte it sends comes back.
type ubloxShim struct {
	tty    string // the pty slave ModemManager opens
	bridge bool   // +UBMCONF: 2 (bridge: static Ip4Config) or 1 (router: dhcp)
	gw     string

	mu     sync.Mutex
	master *os.File
}

func startUbloxShim(t *testing.T, s *sim.Modem, name string, bridge bool) *ubloxShim {
	t.Helper()
	id := s.Identity()
	id.Manufacturer, id.Model = "u-blox", "TOBY-L210"
	s.SetIdentity(id)
	if err := s.ListenAbstract(name); err != nil {
		t.Fatal(err)
	}
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS); err == nil {
		tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		tio.Oflag &^= unix.OPOST
		tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		_ = unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, tio)
	}
	conn, err := net.Dial("unix", "@"+name)
	if err != nil {
		t.Fatal(err)
	}
	sh := &ubloxShim{tty: slave.Name(), bridge: bridge, master: master,
		gw: sim.DefaultBearer(0).Gateway4.String()}
	t.Cleanup(func() { conn.Close(); master.Close(); slave.Close() })
	go func() { _, _ = io.Copy(sh, conn) }()
	go sh.commands(bufio.NewReader(master), conn)
	return sh
}

// Write serialises the simulator's output with the shim's own answers.
func (sh *ubloxShim) Write(p []byte) (int, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.master.Write(p)
}

func (sh *ubloxShim) commands(r *bufio.Reader, toSim net.Conn) {
	for {
		line, err := r.ReadString('\r')
		if err != nil {
			return
		}
		cmd := strings.TrimSpace(line)
		if answer, ok := sh.answer(strings.ToUpper(cmd)); ok {
			_, _ = sh.Write([]byte(answer))
			continue
		}
		if _, err := toSim.Write([]byte(cmd + "\r")); err != nil {
			return
		}
	}
}

// answer holds the u-blox dialogue of modemmanager-netport.md.
func (sh *ubloxShim) answer(cmd string) (string, bool) {
	ok := func(lines ...string) string {
		var b strings.Builder
		for _, l := range lines {
			b.WriteString("\r\n" + l + "\r\n")
		}
		return b.String() + "\r\nOK\r\n"
	}
	mode := "1"
	if sh.bridge {
		mode = "2"
	}
	switch {
	case cmd == "AT+UUSBCONF?":
		return ok(`+UUSBCONF: 2,"ECM",,"0x1143"`), true
	case cmd == "AT+UBMCONF?":
		return ok("+UBMCONF: " + mode), true
	case cmd == "AT+UAUTHREQ=?":
		return ok("+UAUTHREQ: (1-8),(0-3),,"), true
	case strings.HasPrefix(cmd, "AT+UAUTHREQ="):
		return ok(), true
	case cmd == "AT+URAT=?":
		return ok("+URAT: (0-6),(0,2,3)"), true
	case cmd == "AT+URAT?":
		return ok("+URAT: 4,3"), true
	case strings.HasPrefix(cmd, "AT+UIPADDR="):
		cid := strings.TrimPrefix(cmd, "AT+UIPADDR=")
		return ok(fmt.Sprintf(`+UIPADDR: %s,"usb0","%s","255.255.255.0","",""`, cid, sh.gw)), true
	}
	return "", false
}

// TestNetPortBearer: a vendor plugin (u-blox) given a net port, the way
// modemmanager-netport.md describes; ModemManager runs in namespaces of its
// own and sees two fake USB modems: one in bridge mode (static Ip4Config),
// one in router mode (dhcp). Connect returns the bearer's interface and
// configuration as ModemManager gives it; Disconnect takes the bearer down.
func TestNetPortBearer(t *testing.T) {
	t.Parallel()
	bus := mmtest.StartBus(t)
	cases := []struct {
		name   string
		bridge bool
		netif  string
		method string
	}{
		{"bridge static", true, "wwan0", "static"},
		{"router dhcp", false, "wwan1", "dhcp"},
	}
	var usb []mmtest.USBModem
	var sims []*sim.Modem
	for i, c := range cases {
		s := sim.New(sim.DefaultIdentity(10 + i))
		t.Cleanup(func() { s.Close() })
		sh := startUbloxShim(t, s, fmt.Sprintf("%s-ublox-%d", portPrefix, i), c.bridge)
		usb = append(usb, mmtest.USBModem{TTY: sh.tty, VID: "1546", PID: "1102", Manufacturer: "u-blox",
			Product: "TOBY-L2", NetIf: c.netif})
		sims = append(sims, s)
	}
	start := time.Now()
	nb := mmtest.StartNetBench(t, bus, usb...)
	be, err := mm.New(context.Background(), mm.Options{BusAddress: bus.Address, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	ev := collect(t, be)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := sims[i].Identity().IMEI
			info := waitInfo(t, be, ev, id, probeTimeout, "modem", func(modem.Info) bool { return true })
			t.Logf("probed after %v: %s %s on %s", time.Since(start).Round(time.Millisecond), info.Manufacturer, info.Model, info.Port)
			m, _ := be.Get(id)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			t0 := time.Now()
			d, err := m.Connect(ctx, modem.ConnectParams{APN: "internet", IPType: "ipv4"})
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			t.Logf("Connect in %v: %+v ipv4 %+v", time.Since(t0).Round(time.Millisecond), d, d.IPv4)
			bc := sim.DefaultBearer(0)
			want := &modem.IPConfig{Method: "dhcp", DNS: []string{}}
			if c.method == "static" {
				want = &modem.IPConfig{Method: "static", Address: bc.IPv4.Addr().String(), Prefix: bc.IPv4.Bits(),
					Gateway: bc.Gateway4.String(), DNS: []string{bc.DNS4[0].String(), bc.DNS4[1].String()}}
			}
			if !d.Connected || d.Interface != c.netif || d.APN != "internet" || d.IPv6 != nil ||
				d.IPv4 == nil || fmt.Sprint(*d.IPv4) != fmt.Sprint(*want) {
				t.Errorf("got %+v ipv4 %+v, want %s with %+v", d, d.IPv4, c.netif, want)
			}
			got := waitInfo(t, be, ev, id, probeTimeout, "connected", func(in modem.Info) bool { return in.Data.Connected })
			if got.Data.Interface != c.netif {
				t.Errorf("Info().Data %+v", got.Data)
			}
			// A second Connect reuses the bearer.
			if d2, err := m.Connect(ctx, modem.ConnectParams{APN: "internet"}); err != nil || d2.Interface != c.netif {
				t.Errorf("second Connect: %+v %v", d2, err)
			}
			// The network drops the context: ModemManager marks the bearer
			// down and the backend shows it; a new Connect brings it back.
			if err := sims[i].InjectNWDeact(1); err != nil {
				t.Fatal(err)
			}
			waitInfo(t, be, ev, id, probeTimeout, "dropped by the network", func(in modem.Info) bool { return !in.Data.Connected })
			if d3, err := m.Connect(ctx, modem.ConnectParams{APN: "internet", IPType: "ipv4"}); err != nil || !d3.Connected {
				t.Fatalf("Connect after a network drop: %+v %v", d3, err)
			}
			if err := m.Disconnect(ctx); err != nil {
				t.Fatalf("Disconnect: %v", err)
			}
			waitInfo(t, be, ev, id, probeTimeout, "disconnected", func(in modem.Info) bool { return !in.Data.Connected })
			if ctxs, _ := sims[i].Context(1); ctxs.Active {
				t.Errorf("simulator still has context 1 active after Disconnect")
			}
		})
	}
	_ = nb
}

// TestNetPortUnplug: a modem with real-looking ports leaves the way a USB
// unplug does: kernel "remove" events (what udev would report), sent here
// through Manager.ReportKernelEvent. ModemManager releases the ports and
// removes the modem; "add" events bring it back under the same IMEI.
func TestNetPortUnplug(t *testing.T) {
	t.Parallel()
	bus := mmtest.StartBus(t)
	s := sim.New(sim.DefaultIdentity(20))
	t.Cleanup(func() { s.Close() })
	sh := startUbloxShim(t, s, portPrefix+"-ublox-unplug", true)
	nb := mmtest.StartNetBench(t, bus, mmtest.USBModem{TTY: sh.tty, VID: "1546", PID: "1102",
		Manufacturer: "u-blox", Product: "TOBY-L2", NetIf: "wwan0"})
	be, err := mm.New(context.Background(), mm.Options{BusAddress: bus.Address, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	ev := collect(t, be)
	id := s.Identity().IMEI
	ev.wait(t, 0, probeTimeout, "Added", kindFor(modem.Added, id))

	kernel := func(action, subsystem, name string) {
		t.Helper()
		err := nb.Daemon.Conn().Object("org.freedesktop.ModemManager1", "/org/freedesktop/ModemManager1").Call(
			"org.freedesktop.ModemManager1.ReportKernelEvent", 0, map[string]dbus.Variant{
				"action": dbus.MakeVariant(action), "subsystem": dbus.MakeVariant(subsystem), "name": dbus.MakeVariant(name),
			}).Err
		if err != nil {
			t.Fatalf("ReportKernelEvent %s %s/%s: %v", action, subsystem, name, err)
		}
	}
	mark := ev.mark()
	start := time.Now()
	kernel("remove", "net", "wwan0")
	kernel("remove", "tty", "ttyACM0")
	ev.wait(t, mark, probeTimeout, "Removed", kindFor(modem.Removed, id))
	t.Logf("removed %v after the remove events", time.Since(start).Round(time.Millisecond))

	mark = ev.mark()
	start = time.Now()
	kernel("add", "tty", "ttyACM0")
	kernel("add", "net", "wwan0")
	back := ev.wait(t, mark, probeTimeout, "Added again", kindFor(modem.Added, id))
	t.Logf("back %v after the add events: %s", time.Since(start).Round(time.Millisecond), back.Info.Port)
}
