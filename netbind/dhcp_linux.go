//go:build linux

package netbind

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/simproof/simproof/modem"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// DHCP bounds: each message waits dhcpTimeout for an answer and is sent
// dhcpRetries times; the caller's context bounds the whole exchange.
const (
	dhcpTimeout = 2 * time.Second
	dhcpRetries = 3
	maxDHCPDNS  = 4 // DNS servers kept from an answer
)

// DHCPv4 asks the DHCPv4 server of a modem's network function for the
// bearer's IPv4 configuration: ECM, NCM and RNDIS modems run one on their
// USB Ethernet link instead of reporting the address over AT or MBIM. It
// runs DISCOVER/OFFER/REQUEST/ACK on ifname, which may have no address yet
// (a packet socket: the process needs CAP_NET_RAW and AF_PACKET), validates
// the answer (hostile input) and returns it with Method "dhcp", ready for
// Binder.Apply. The lease is not renewed: ask again when the bearer
// reconnects. Sockets are made in the calling thread's network namespace.
func DHCPv4(ctx context.Context, ifname string) (*modem.IPConfig, error) {
	c, err := nclient4.New(ifname, nclient4.WithTimeout(dhcpTimeout), nclient4.WithRetry(dhcpRetries))
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", ifname, err)
	}
	defer c.Close()
	lease, err := c.Request(ctx, dhcpv4.WithRequestedOptions(dhcpv4.OptionInterfaceMTU))
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", ifname, err)
	}
	cfg, err := fromACK(lease.ACK)
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", ifname, err)
	}
	return cfg, nil
}

// fromACK validates an acknowledgement and turns it into a configuration.
func fromACK(ack *dhcpv4.DHCPv4) (*modem.IPConfig, error) {
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		return nil, errors.New("no ACK")
	}
	addr, ok := netip.AddrFromSlice(ack.YourIPAddr)
	if addr = addr.Unmap(); !ok || !addr.Is4() || !addr.IsGlobalUnicast() {
		return nil, fmt.Errorf("ACK offers no usable address (%v)", ack.YourIPAddr)
	}
	prefix := 32
	if m := ack.SubnetMask(); m != nil {
		ones, bits := m.Size()
		if bits != 32 || ones == 0 {
			return nil, fmt.Errorf("ACK subnet mask %v is not a usable netmask", net.IP(m))
		}
		prefix = ones
	}
	cfg := &modem.IPConfig{Method: "dhcp", Address: addr.String(), Prefix: prefix, DNS: []string{}}
	for _, r := range ack.Router() {
		if g, ok := netip.AddrFromSlice(r); ok && g.Unmap().Is4() && !g.Unmap().IsUnspecified() {
			cfg.Gateway = g.Unmap().String()
			break
		}
	}
	for _, d := range ack.DNS() {
		if a, ok := netip.AddrFromSlice(d); ok && a.Unmap().Is4() && !a.Unmap().IsUnspecified() && len(cfg.DNS) < maxDHCPDNS {
			cfg.DNS = append(cfg.DNS, a.Unmap().String())
		}
	}
	if b := ack.GetOneOption(dhcpv4.OptionInterfaceMTU); len(b) == 2 {
		if mtu := int(b[0])<<8 | int(b[1]); mtu >= 576 {
			cfg.MTU = mtu
		}
	}
	return cfg, nil
}

// DHCPv4 brings ifname up in the Binder's network namespace and asks the
// modem's DHCPv4 server there (see the package function DHCPv4): an ECM or
// RNDIS function may come up administratively down.
func (b *Binder) DHCPv4(ctx context.Context, ifname string) (*modem.IPConfig, error) {
	var cfg *modem.IPConfig
	err := runIn(b.opts.NetNS, func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return &BearerError{Interface: ifname, Reason: "no such interface"}
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("dhcp on %s: link up: %w", ifname, err)
		}
		cfg, err = DHCPv4(ctx, ifname)
		return err
	})
	return cfg, err
}

// runIn runs fn on a thread switched into the network namespace at path
// ("" = this one), switched back and reused afterwards (a discarded thread
// would take children started from it with Pdeathsig along).
func runIn(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current network namespace: %w", err)
			return // never switched; the thread is discarded anyway
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("network namespace %s: %w", path, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave network namespace %s: %w", path, err) // stays locked: discarded
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
