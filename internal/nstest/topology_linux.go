package nstest

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/simproof/simproof/modem"
)

// Options shapes NewTopology. The zero value is one modem, unconfigured.
type Options struct {
	// Modems is the number of wwan interfaces (wwan0..wwanN-1); 0 means 1.
	Modems int
	// ConfigureModems puts each bearer's addresses on its wwan interface
	// and a main-table default route through it with a worse metric than
	// eth0's, as NetworkManager would. Without it the wwan interfaces are
	// up with no address, waiting for netbind.
	ConfigureModems bool
	// RPFilter is net.ipv4.conf.{all,default}.rp_filter in the device
	// namespace (0 off, 1 strict, 2 loose).
	RPFilter int
}

// Modem is one simulated modem data link: Interface in the device
// namespace, Peer in the carrier namespace.
type Modem struct {
	Interface string       // "wwan0"
	Peer      string       // "c-wwan0"
	Addr4     netip.Prefix // 100.64.<i>.2/24: the bearer's IPv4 address
	Gateway4  netip.Addr   // 100.64.<i>.1, on Peer
	Addr6     netip.Prefix // 2001:db8:64:<i>::2/64
	Gateway6  netip.Addr   // 2001:db8:64:<i>::1, on Peer
}

// Topology is spec/testing.md's bench: a device namespace whose wwanX links
// lead to a carrier namespace and whose eth0 (holding the default routes)
// leads to an ISP namespace; both reach a server namespace. Nothing is
// NATed, so the server sees a wwan address for traffic through the carrier
// and eth0's address for traffic through the ISP.
type Topology struct {
	Device, Carrier, ISP, Server *NS

	Modems []Modem

	Eth0      string       // "eth0" in Device
	Eth0Addr4 netip.Prefix // 203.0.113.2/24 (ISP side .1)
	Eth0Addr6 netip.Prefix // 2001:db8:e::2/64 (ISP side ::1)

	// Addresses on the server's loopback, reachable from both sides.
	ServerAddr4 netip.Addr // 192.0.2.80
	ServerAddr6 netip.Addr // 2001:db8:5::80

	// Addresses on the carrier's and the ISP's loopback, for StartDNS.
	CarrierDNS4 netip.Addr // 100.64.255.53
	CarrierDNS6 netip.Addr // 2001:db8:64:ffff::53
	ISPDNS4     netip.Addr // 198.51.100.53
	ISPDNS6     netip.Addr // 2001:db8:e:ffff::53
}

// IPv4 is the modem's IPv4 bearer configuration as a modem backend would
// report it, with the carrier DNS address.
func (m Modem) IPv4(tp *Topology) *modem.IPConfig {
	return &modem.IPConfig{Method: "static", Address: m.Addr4.Addr().String(), Prefix: m.Addr4.Bits(),
		Gateway: m.Gateway4.String(), DNS: []string{tp.CarrierDNS4.String()}}
}

// IPv6 is the modem's IPv6 bearer configuration, with the carrier DNS address.
func (m Modem) IPv6(tp *Topology) *modem.IPConfig {
	return &modem.IPConfig{Method: "static", Address: m.Addr6.Addr().String(), Prefix: m.Addr6.Bits(),
		Gateway: m.Gateway6.String(), DNS: []string{tp.CarrierDNS6.String()}}
}

const maxModems = 200

// NewTopology builds the bench; it is torn down when the test ends.
func NewTopology(t testing.TB, o Options) *Topology {
	t.Helper()
	RequireRoot(t)
	n := o.Modems
	if n == 0 {
		n = 1
	}
	if n < 0 || n > maxModems {
		t.Fatalf("nstest: %d modems; want 1..%d", n, maxModems)
	}
	tp := &Topology{
		Device:      NewNS(t, "dev"),
		Carrier:     NewNS(t, "car"),
		ISP:         NewNS(t, "isp"),
		Server:      NewNS(t, "srv"),
		Eth0:        "eth0",
		Eth0Addr4:   netip.MustParsePrefix("203.0.113.2/24"),
		Eth0Addr6:   netip.MustParsePrefix("2001:db8:e::2/64"),
		ServerAddr4: netip.MustParseAddr("192.0.2.80"),
		ServerAddr6: netip.MustParseAddr("2001:db8:5::80"),
		CarrierDNS4: netip.MustParseAddr("100.64.255.53"),
		CarrierDNS6: netip.MustParseAddr("2001:db8:64:ffff::53"),
		ISPDNS4:     netip.MustParseAddr("198.51.100.53"),
		ISPDNS6:     netip.MustParseAddr("2001:db8:e:ffff::53"),
	}
	dev, car, isp, srv := tp.Device, tp.Carrier, tp.ISP, tp.Server

	for _, r := range []*NS{car, isp, srv} {
		r.Sysctl(t, "net/ipv4/ip_forward", "1")
		r.Sysctl(t, "net/ipv6/conf/all/forwarding", "1")
	}
	rp := fmt.Sprint(o.RPFilter)
	dev.Sysctl(t, "net/ipv4/conf/all/rp_filter", rp)
	dev.Sysctl(t, "net/ipv4/conf/default/rp_filter", rp)

	// Server and its two uplinks.
	srv.AddAddr(t, "lo", "192.0.2.80/32")
	srv.AddAddr(t, "lo", "2001:db8:5::80/128")
	Veth(t, car, "c-srv", srv, "s-car")
	car.AddAddr(t, "c-srv", "198.51.100.1/30")
	car.AddAddr(t, "c-srv", "2001:db8:1::1/64")
	srv.AddAddr(t, "s-car", "198.51.100.2/30")
	srv.AddAddr(t, "s-car", "2001:db8:1::2/64")
	Veth(t, isp, "i-srv", srv, "s-isp")
	isp.AddAddr(t, "i-srv", "198.51.100.5/30")
	isp.AddAddr(t, "i-srv", "2001:db8:2::1/64")
	srv.AddAddr(t, "s-isp", "198.51.100.6/30")
	srv.AddAddr(t, "s-isp", "2001:db8:2::2/64")
	srv.AddRoute(t, "100.64.0.0/10", "198.51.100.1", "s-car")
	srv.AddRoute(t, "2001:db8:64::/48", "2001:db8:1::1", "s-car")
	srv.AddRoute(t, "203.0.113.0/24", "198.51.100.5", "s-isp")
	srv.AddRoute(t, "198.51.100.53/32", "198.51.100.5", "s-isp")
	srv.AddRoute(t, "2001:db8:e::/48", "2001:db8:2::1", "s-isp")

	// Carrier: DNS address, default towards the server.
	car.AddAddr(t, "lo", "100.64.255.53/32")
	car.AddAddr(t, "lo", "2001:db8:64:ffff::53/128")
	car.AddRoute(t, "default", "198.51.100.2", "c-srv")
	car.AddRoute(t, "default6", "2001:db8:1::2", "c-srv")

	// ISP: DNS address, default towards the server; the device's eth0.
	isp.AddAddr(t, "lo", "198.51.100.53/32")
	isp.AddAddr(t, "lo", "2001:db8:e:ffff::53/128")
	isp.AddRoute(t, "default", "198.51.100.6", "i-srv")
	isp.AddRoute(t, "default6", "2001:db8:2::2", "i-srv")
	Veth(t, dev, tp.Eth0, isp, "i-eth0")
	dev.AddAddr(t, tp.Eth0, tp.Eth0Addr4.String())
	dev.AddAddr(t, tp.Eth0, tp.Eth0Addr6.String())
	isp.AddAddr(t, "i-eth0", "203.0.113.1/24")
	isp.AddAddr(t, "i-eth0", "2001:db8:e::1/64")
	// Explicit metrics: IPv6 turns metric 0 into 1024, which would lose to
	// the wwan defaults below.
	dev.addDefaultMetric(t, netip.MustParseAddr("203.0.113.1"), tp.Eth0, eth0Metric)
	dev.addDefaultMetric(t, netip.MustParseAddr("2001:db8:e::1"), tp.Eth0, eth0Metric)

	for i := range n {
		m := Modem{
			Interface: fmt.Sprintf("wwan%d", i),
			Peer:      fmt.Sprintf("c-wwan%d", i),
			Addr4:     netip.MustParsePrefix(fmt.Sprintf("100.64.%d.2/24", i)),
			Gateway4:  netip.MustParseAddr(fmt.Sprintf("100.64.%d.1", i)),
			Addr6:     netip.MustParsePrefix(fmt.Sprintf("2001:db8:64:%x::2/64", i)),
			Gateway6:  netip.MustParseAddr(fmt.Sprintf("2001:db8:64:%x::1", i)),
		}
		Veth(t, dev, m.Interface, car, m.Peer)
		car.AddAddr(t, m.Peer, fmt.Sprintf("%s/24", m.Gateway4))
		car.AddAddr(t, m.Peer, fmt.Sprintf("%s/64", m.Gateway6))
		if o.ConfigureModems {
			dev.AddAddr(t, m.Interface, m.Addr4.String())
			dev.AddAddr(t, m.Interface, m.Addr6.String())
			dev.addDefaultMetric(t, m.Gateway4, m.Interface, wwanMetric+i)
			dev.addDefaultMetric(t, m.Gateway6, m.Interface, wwanMetric+i)
		}
		tp.Modems = append(tp.Modems, m)
	}
	tp.quiesce(t)
	return tp
}

// Route metrics as NetworkManager sets them: wired beats mobile broadband.
const (
	eth0Metric = 100
	wwanMetric = 700
)

// quiesce waits, bounded, until the device's links stop sending the
// multicast reports their new addresses trigger (NewNS makes the kernel send
// them within milliseconds), so packet counts taken next see only what a
// test does.
func (tp *Topology) quiesce(t testing.TB) {
	t.Helper()
	ifs := []string{tp.Eth0}
	for _, m := range tp.Modems {
		ifs = append(ifs, m.Interface)
	}
	count := func() (sum uint64) {
		for _, i := range ifs {
			sum += tp.Device.TxPackets(t, i)
		}
		return sum
	}
	const stillFor, poll, limit = 50, 2 * time.Millisecond, 2500
	last, still := count(), 0
	for range limit {
		time.Sleep(poll)
		if n := count(); n != last {
			last, still = n, 0
			continue
		}
		if still++; still == stillFor {
			return
		}
	}
	t.Fatalf("nstest: device links of %s still sending after %v", tp.Device.Name, limit*poll)
}

// StartEcho serves HTTP on port 80 of every server address until the test
// ends. The body is the source address the server saw, nothing else; the
// X-Proto header is the request's protocol version.
func (tp *Topology) StartEcho(t testing.TB) {
	t.Helper()
	ln := tp.Server.Listen(t, "tcp", ":80")
	srv := &http.Server{Handler: EchoHandler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// EchoHandler answers every request with the source address it came from.
func EchoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("X-Proto", r.Proto)
		fmt.Fprint(w, host)
	})
}
