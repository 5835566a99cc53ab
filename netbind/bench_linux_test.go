package netbind_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/simproof/simproof/internal/nstest"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/netbind"
)

// The test name resolves differently on each side: the carrier's DNS gives
// the server, the ISP's DNS a decoy. Only the pinned resolver may see the
// carrier's answer from the device.
const (
	testName   = "check.example.test"
	v4OnlyName = "v4only.example.test"
	tlsName    = "example.com" // a name the httptest certificate is valid for
)

var (
	decoy4 = netip.MustParseAddr("192.0.2.99")
	decoy6 = netip.MustParseAddr("2001:db8:5::99")
)

type bench struct {
	tp         *nstest.Topology
	b          *netbind.Binder
	carrierDNS *nstest.DNSServer
	ispDNS     *nstest.DNSServer
}

// newBench is the topology with strict reverse-path filtering on the
// device, the echo server, and DNS servers on both sides.
func newBench(t *testing.T, modems int) *bench {
	t.Helper()
	tp := nstest.NewTopology(t, nstest.Options{Modems: modems, RPFilter: 1})
	tp.StartEcho(t)
	bn := &bench{tp: tp, b: netbind.NewBinder(netbind.Options{NetNS: tp.Device.Path()})}
	bn.carrierDNS = nstest.StartDNS(t, tp.Carrier, map[string][]netip.Addr{
		testName:   {tp.ServerAddr4, tp.ServerAddr6},
		v4OnlyName: {tp.ServerAddr4},
		tlsName:    {tp.ServerAddr4, tp.ServerAddr6},
	}, dnsAddr(tp.CarrierDNS4), dnsAddr(tp.CarrierDNS6))
	bn.ispDNS = nstest.StartDNS(t, tp.ISP, map[string][]netip.Addr{
		testName:   {decoy4, decoy6},
		v4OnlyName: {decoy4},
		tlsName:    {decoy4, decoy6},
	}, dnsAddr(tp.ISPDNS4), dnsAddr(tp.ISPDNS6))
	return bn
}

func dnsAddr(a netip.Addr) string { return net.JoinHostPort(a.String(), "53") }

// apply applies modem i's bearer (families as given) and returns its
// pinned client, using the bearer's DNS servers.
func (bn *bench) apply(t *testing.T, i int, v4, v6 bool) *netbind.Pinned {
	t.Helper()
	m := bn.tp.Modems[i]
	c := netbind.Config{Interface: m.Interface, ModemID: fmt.Sprintf("modem-%d", i), Manage: netbind.ManageAlways}
	var dns []string
	if v4 {
		c.IPv4 = m.IPv4(bn.tp)
		dns = append(dns, c.IPv4.DNS...)
	}
	if v6 {
		c.IPv6 = m.IPv6(bn.tp)
		dns = append(dns, c.IPv6.DNS...)
	}
	a, err := bn.b.Apply(context.Background(), c)
	if err != nil {
		t.Fatalf("apply %s: %v", m.Interface, err)
	}
	t.Cleanup(func() {
		if err := bn.b.Remove(context.Background(), a); err != nil {
			t.Errorf("remove %s: %v", m.Interface, err)
		}
	})
	return bn.client(t, m.Interface, dns)
}

func (bn *bench) client(t *testing.T, ifname string, dns []string) *netbind.Pinned {
	t.Helper()
	p, err := netbind.NewClient(netbind.ClientOptions{
		Interface:   ifname,
		DNS:         dns,
		NetNS:       bn.tp.Device.Path(),
		DialTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatalf("client for %s: %v", ifname, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func (bn *bench) eth0Tx(t *testing.T) uint64 {
	t.Helper()
	return bn.tp.Device.TxPackets(t, bn.tp.Eth0)
}

// fetch GETs url through p and returns the body (the source address the
// server saw) and the hop.
func fetch(t *testing.T, p *netbind.Pinned, url string) (string, netbind.HopInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, hop, err := p.Do(req)
	if err != nil {
		return "", hop, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	return string(b), hop, err
}

func requireNoBearer(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, modem.ErrNoBearer) {
		t.Fatalf("error %v does not match modem.ErrNoBearer", err)
	}
	var be *netbind.BearerError
	if !errors.As(err, &be) {
		t.Fatalf("error %v is not a *netbind.BearerError", err)
	}
}

func url4(tp *nstest.Topology) string { return "http://" + tp.ServerAddr4.String() + "/" }
func url6(tp *nstest.Topology) string { return "http://[" + tp.ServerAddr6.String() + "]/" }
