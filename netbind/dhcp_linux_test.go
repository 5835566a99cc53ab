//go:build linux

package netbind_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/simproof/simproof/internal/nstest"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/netbind"
)

// startDHCP serves DHCPv4 on the carrier side of modem 0's link, as an
// ECM/NCM modem does on its USB Ethernet function; edit may spoil the
// answer.
func startDHCP(t *testing.T, tp *nstest.Topology, edit ...dhcpv4.Modifier) {
	t.Helper()
	m := tp.Modems[0]
	handler := func(conn net.PacketConn, peer net.Addr, req *dhcpv4.DHCPv4) {
		var mt dhcpv4.MessageType
		switch req.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			mt = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			mt = dhcpv4.MessageTypeAck
		default:
			return
		}
		gw := m.Gateway4.AsSlice()
		mods := []dhcpv4.Modifier{
			dhcpv4.WithMessageType(mt),
			dhcpv4.WithYourIP(m.Addr4.Addr().AsSlice()),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(gw)),
			dhcpv4.WithNetmask(net.CIDRMask(m.Addr4.Bits(), 32)),
			dhcpv4.WithRouter(gw),
			dhcpv4.WithDNS(tp.CarrierDNS4.AsSlice()),
			dhcpv4.WithLeaseTime(3600),
			dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{0x05, 0x94}), // 1428
		}
		resp, err := dhcpv4.NewReplyFromRequest(req, append(mods, edit...)...)
		if err != nil {
			t.Errorf("dhcp reply: %v", err)
			return
		}
		_, _ = conn.WriteTo(resp.ToBytes(), peer)
	}
	var srv *server4.Server
	err := tp.Carrier.Do(func() (err error) {
		srv, err = server4.NewServer(m.Peer, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, handler)
		return err
	})
	if err != nil {
		t.Fatalf("dhcp server: %v", err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
}

func dhcpIn(ns *nstest.NS, ifname string, timeout time.Duration) (*modem.IPConfig, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var cfg *modem.IPConfig
	err := ns.Do(func() (err error) {
		cfg, err = netbind.DHCPv4(ctx, ifname)
		return err
	})
	return cfg, err
}

// TestDHCPv4ThenPinned: the lease from the modem's DHCP server is applied
// and used; nothing, DHCP included, goes through eth0.
func TestDHCPv4ThenPinned(t *testing.T) {
	bn := newBench(t, 1)
	m := bn.tp.Modems[0]
	startDHCP(t, bn.tp)
	before := bn.eth0Tx(t)

	cfg, err := dhcpIn(bn.tp.Device, m.Interface, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := modem.IPConfig{Method: "dhcp", Address: m.Addr4.Addr().String(), Prefix: m.Addr4.Bits(),
		Gateway: m.Gateway4.String(), DNS: []string{bn.tp.CarrierDNS4.String()}, MTU: 1428}
	if cfg.Method != want.Method || cfg.Address != want.Address || cfg.Prefix != want.Prefix ||
		cfg.Gateway != want.Gateway || strings.Join(cfg.DNS, ",") != strings.Join(want.DNS, ",") || cfg.MTU != want.MTU {
		t.Fatalf("lease %+v, want %+v", *cfg, want)
	}

	a, err := bn.b.Apply(context.Background(), netbind.Config{Interface: m.Interface, ModemID: "m", IPv4: cfg, Manage: netbind.ManageAuto})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bn.b.Remove(context.Background(), a) })
	p := bn.client(t, m.Interface, cfg.DNS)
	got, _, err := fetch(t, p, "http://"+testName+"/")
	if err != nil {
		t.Fatal(err)
	}
	if got != m.Addr4.Addr().String() {
		t.Errorf("server saw %s, want the leased %s", got, m.Addr4.Addr())
	}
	if sent := bn.eth0Tx(t) - before; sent != 0 {
		t.Errorf("eth0 sent %d packets", sent)
	}
}

func TestDHCPv4RejectsBadAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit dhcpv4.Modifier
		want string
	}{
		{"no address", dhcpv4.WithYourIP(net.IPv4zero), "no usable address"},
		{"multicast address", dhcpv4.WithYourIP(net.IPv4(224, 0, 0, 9)), "no usable address"},
		{"non-contiguous mask", dhcpv4.WithNetmask(net.IPMask{255, 0, 255, 0}), "netmask"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := nstest.NewTopology(t, nstest.Options{})
			startDHCP(t, tp, tc.edit)
			cfg, err := dhcpIn(tp.Device, tp.Modems[0].Interface, 5*time.Second)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("lease %+v, err %v; want an error about %q", cfg, err, tc.want)
			}
		})
	}
	t.Run("no server", func(t *testing.T) {
		tp := nstest.NewTopology(t, nstest.Options{})
		if _, err := dhcpIn(tp.Device, tp.Modems[0].Interface, 300*time.Millisecond); err == nil {
			t.Error("a lease without a server")
		}
	})
}
