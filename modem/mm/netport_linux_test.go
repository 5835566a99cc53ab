package mm_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
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

// vendorShim is a pseudo-terminal in front of a modem/sim simulator that
// adds a vendor's commands ModemManager's vendor plugin needs for a
// net-port bearer (modem/sim speaks the generic 27.007 dialogue only):
// u-blox (startUbloxShim) or Nokia/Icera (iceraVendor). Every other line
// goes to the simulator, every byte it sends comes back.
type vendorShim struct {
	tty    string // the pty slave ModemManager opens
	bridge bool   // +UBMCONF: 2 (bridge: static Ip4Config) or 1 (router: dhcp)
	gw     string
	// vendor answers the vendor's commands (ok false: pass to the simulator).
	vendor func(cmd string) (answer string, ok bool)

	mu     sync.Mutex
	master *os.File
}

func startUbloxShim(t *testing.T, s *sim.Modem, name string, bridge bool) *vendorShim {
	t.Helper()
	id := s.Identity()
	id.Manufacturer, id.Model = "u-blox", "TOBY-L210"
	s.SetIdentity(id)
	sh := startShim(t, s, name)
	sh.bridge = bridge
	sh.vendor = sh.answer
	return sh
}

// startShim puts a pseudo-terminal in front of simulator s (served on the
// abstract socket name); set vendor before ModemManager opens the tty.
func startShim(t *testing.T, s *sim.Modem, name string) *vendorShim {
	t.Helper()
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
	sh := &vendorShim{tty: slave.Name(), master: master, gw: sim.DefaultBearer(0).Gateway4.String()}
	t.Cleanup(func() { conn.Close(); master.Close(); slave.Close() })
	go func() { _, _ = io.Copy(sh, conn) }()
	go sh.commands(bufio.NewReader(master), conn)
	return sh
}

// Write serialises the simulator's output with the shim's own answers.
func (sh *vendorShim) Write(p []byte) (int, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.master.Write(p)
}

func (sh *vendorShim) commands(r *bufio.Reader, toSim net.Conn) {
	for {
		line, err := r.ReadString('\r')
		if err != nil {
			return
		}
		cmd := strings.TrimSpace(line)
		if answer, ok := sh.vendor(strings.ToUpper(cmd)); ok {
			_, _ = sh.Write([]byte(answer))
			continue
		}
		if _, err := toSim.Write([]byte(cmd + "\r")); err != nil {
			return
		}
	}
}

// ok frames information lines and a final OK.
func ok(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("\r\n" + l + "\r\n")
	}
	return b.String() + "\r\nOK\r\n"
}

// answer holds the u-blox dialogue of modemmanager-netport.md.
func (sh *vendorShim) answer(cmd string) (string, bool) {
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

// iceraVendor answers the Nokia/Icera commands of modemmanager-netport.md
// for a bearer with bc's addresses: %IPDPACT with its URC, %IPDPADDR with
// IPv4 and IPv6 (zeros for a family bc lacks).
func iceraVendor(sh *vendorShim, bc sim.BearerConfig) func(string) (string, bool) {
	v4 := func(a netip.Addr) string {
		if !a.IsValid() || !bc.IPv4.IsValid() {
			return "0.0.0.0"
		}
		return a.String()
	}
	v6 := func(a netip.Addr) string {
		if !a.IsValid() || !bc.IPv6.IsValid() {
			return "::"
		}
		return a.String()
	}
	dns := func(list []netip.Addr, i int) netip.Addr {
		if i < len(list) {
			return list[i]
		}
		return netip.Addr{}
	}
	return func(cmd string) (string, bool) {
		switch {
		case cmd == "AT%IPSYS?":
			return ok("%IPSYS: 3,2"), true
		case cmd == "AT%IPSYS=?":
			return ok("%IPSYS: (0-3,5),(0-3)"), true
		case cmd == "AT%IPBM?":
			// At least one band disabled: with all enabled ModemManager
			// 1.20.4 asserts.
			return ok(`"ANY": 1`, `"EGSM": 0`, `"FDD_BAND_I": 1`), true
		case strings.HasPrefix(cmd, "AT%IPBM="):
			return ok(), true
		case strings.HasPrefix(cmd, "AT%IPDPCFG="):
			return ok(), true
		case strings.HasPrefix(cmd, "AT%IPDPACT=") && strings.HasSuffix(cmd, ",1"),
			strings.HasPrefix(cmd, "AT%IPDPACT=") && strings.HasSuffix(cmd, ",0"):
			cid, state, _ := strings.Cut(strings.TrimPrefix(cmd, "AT%IPDPACT="), ",")
			return ok() + fmt.Sprintf("\r\n%%IPDPACT: %s,%s,0\r\n", cid, state), true
		case strings.HasPrefix(cmd, "AT%IPDPADDR="):
			cid := strings.TrimPrefix(cmd, "AT%IPDPADDR=")
			mask := "0.0.0.0"
			if bc.IPv4.IsValid() {
				m := net.CIDRMask(bc.IPv4.Bits(), 32)
				mask = net.IP(m).String()
			}
			return ok(fmt.Sprintf("%%IPDPADDR: %s, %s, %s, %s, %s, 0.0.0.0, 0.0.0.0, %s, %s, %s, ::, %s, %s, ::, ::, ::, ::",
				cid, v4(bc.IPv4.Addr()), v4(bc.Gateway4), v4(dns(bc.DNS4, 0)), v4(dns(bc.DNS4, 1)), mask, v4(bc.Gateway4),
				v6(bc.IPv6.Addr()), v6(dns(bc.DNS6, 0)), v6(dns(bc.DNS6, 1)))), true
		}
		return "", false
	}
}

// TestNetPortIPv6: the nokia-icera plugin gives static Ip4Config and
// Ip6Config on the net port; an IPv6-only bearer (what a NAT64 carrier
// hands out) comes back with IPv6 only.
func TestNetPortIPv6(t *testing.T) {
	t.Parallel()
	bus := mmtest.StartBus(t)
	dual := sim.DefaultBearer(0)
	dual.IPv6 = netip.MustParsePrefix("2001:db8:64:1::2/64")
	dual.DNS6 = []netip.Addr{netip.MustParseAddr("2001:db8:64:1::53")}
	v6only := sim.BearerConfig{APN: "internet", IPv6: netip.MustParsePrefix("2001:db8:64:2::2/64"),
		DNS6: []netip.Addr{netip.MustParseAddr("2001:db8:64:2::53")}}
	cases := []struct {
		name   string
		bearer sim.BearerConfig
		ipType string
		netif  string
	}{
		{"ipv4v6", dual, "ipv4v6", "wwan0"},
		{"ipv6 only", v6only, "ipv6", "wwan1"},
	}
	var usb []mmtest.USBModem
	var sims []*sim.Modem
	for i, c := range cases {
		s := sim.New(sim.DefaultIdentity(30 + i))
		t.Cleanup(func() { s.Close() })
		id := s.Identity()
		id.Manufacturer, id.Model = "Nokia", "21M-02"
		s.SetIdentity(id)
		s.SetBearer(c.bearer)
		sh := startShim(t, s, fmt.Sprintf("%s-icera-%d", portPrefix, i))
		sh.vendor = iceraVendor(sh, c.bearer)
		usb = append(usb, mmtest.USBModem{TTY: sh.tty, VID: "0421", PID: "0637", Manufacturer: "Nokia",
			Product: "Nokia 21M-02", NetIf: c.netif})
		sims = append(sims, s)
	}
	mmtest.StartNetBench(t, bus, usb...)
	be, err := mm.New(context.Background(), mm.Options{BusAddress: bus.Address, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	ev := collect(t, be)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := sims[i].Identity().IMEI
			waitInfo(t, be, ev, id, probeTimeout, "modem", func(modem.Info) bool { return true })
			m, _ := be.Get(id)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			d, err := m.Connect(ctx, modem.ConnectParams{APN: "internet", IPType: c.ipType})
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			t.Logf("Connect: %+v ipv4 %+v ipv6 %+v", d, d.IPv4, d.IPv6)
			if d.Interface != c.netif || d.IPv6 == nil || d.IPv6.Method != "static" ||
				d.IPv6.Address != c.bearer.IPv6.Addr().String() || d.IPv6.Prefix != 64 ||
				len(d.IPv6.DNS) == 0 || d.IPv6.DNS[0] != c.bearer.DNS6[0].String() {
				t.Errorf("ipv6 %+v on %s", d.IPv6, d.Interface)
			}
			if c.bearer.IPv4.IsValid() {
				if d.IPv4 == nil || d.IPv4.Method != "static" || d.IPv4.Address != c.bearer.IPv4.Addr().String() {
					t.Errorf("ipv4 %+v", d.IPv4)
				}
			} else if d.IPv4 != nil {
				t.Errorf("IPv6-only bearer has ipv4 %+v", d.IPv4)
			}
			if err := m.Disconnect(ctx); err != nil {
				t.Errorf("Disconnect: %v", err)
			}
		})
	}
}
