// Package netbind owns the path from a modem's data session to the network.
//
// A Binder configures the bearer's interface with netlink where the modem
// backend does not: link up, MTU, addresses, a routing table of its own per
// modem with a default route through the interface, and rules that select
// that table for traffic bound to the interface or sourced from its
// address, for IPv4 and IPv6. It removes exactly what it added.
//
// A Pinned client is an http.Client (and resolver) whose every socket, DNS
// included, is bound to the bearer's interface with SO_BINDTODEVICE and
// whose DNS questions go only to the bearer's DNS servers. It fails closed:
// when the interface is missing, down or has no address of the needed
// family, requests fail with an error matching modem.ErrNoBearer; nothing
// ever falls back to another interface.
//
// DHCPv4 asks a modem's own DHCP server (ECM/NCM/RNDIS) for the bearer's
// IPv4 configuration when the backend cannot report it.
//
// All of it works on Linux only; elsewhere it returns errors.ErrUnsupported.
package netbind

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/simproof/simproof/modem"
)

// BearerError says why an interface cannot carry a bearer's traffic right
// now. It matches modem.ErrNoBearer with errors.Is (API code "no_bearer").
type BearerError struct {
	Interface string
	Reason    string // "no such interface", "down", "no IPv4 address", …
}

func (e *BearerError) Error() string {
	return fmt.Sprintf("%s: %s: %s", modem.ErrNoBearer, e.Interface, e.Reason)
}

func (e *BearerError) Unwrap() error { return modem.ErrNoBearer }

// ErrNoDNS is returned when a name must be resolved but the bearer gave no
// DNS server usable on its interface. The system resolver is never used
// instead.
var ErrNoDNS = errors.New("bearer has no usable DNS server")

// family is a set of IP families.
type family uint8

const (
	fam4 family = 1 << iota
	fam6
)

func familyOf(a netip.Addr) family {
	if a.Unmap().Is4() {
		return fam4
	}
	return fam6
}

func (f family) String() string {
	switch f {
	case fam4:
		return "IPv4"
	case fam6:
		return "IPv6"
	case fam4 | fam6:
		return "IPv4+IPv6"
	}
	return "none"
}

// requireFamilies turns missing families into a BearerError.
func requireFamilies(ifname string, have, want family) error {
	if have == 0 {
		return &BearerError{Interface: ifname, Reason: "no global address"}
	}
	for _, f := range []family{fam4, fam6} {
		if want&f != 0 && have&f == 0 {
			return &BearerError{Interface: ifname, Reason: "no global " + f.String() + " address"}
		}
	}
	return nil
}

// bearerAddr is one family's parsed bearer configuration.
type bearerAddr struct {
	prefix  netip.Prefix // address with its prefix length (host-only when unknown)
	gateway netip.Addr   // invalid when the bearer has none (point-to-point)
}

// parseIPConfig validates a backend's textual configuration. A zero Prefix
// means unknown and becomes a host prefix; a gateway of 0.0.0.0, :: or the
// address itself means none.
func parseIPConfig(c *modem.IPConfig, want family) (bearerAddr, error) {
	a, err := netip.ParseAddr(c.Address)
	if err != nil {
		return bearerAddr{}, fmt.Errorf("address %q: %w", c.Address, err)
	}
	a = a.Unmap()
	if a.Zone() != "" || familyOf(a) != want || !a.IsGlobalUnicast() {
		return bearerAddr{}, fmt.Errorf("address %q is not a global %s unicast address", c.Address, want)
	}
	bits := c.Prefix
	if bits == 0 {
		bits = a.BitLen()
	}
	if bits < 1 || bits > a.BitLen() {
		return bearerAddr{}, fmt.Errorf("prefix length %d out of range for %s", c.Prefix, a)
	}
	b := bearerAddr{prefix: netip.PrefixFrom(a, bits)}
	if c.Gateway != "" {
		g, err := netip.ParseAddr(c.Gateway)
		if err != nil {
			return bearerAddr{}, fmt.Errorf("gateway %q: %w", c.Gateway, err)
		}
		g = g.Unmap()
		if familyOf(g) != want {
			return bearerAddr{}, fmt.Errorf("gateway %q is not %s", c.Gateway, want)
		}
		if !g.IsUnspecified() && g != a {
			b.gateway = g
		}
	}
	return b, nil
}

// parseDNS turns the bearer's DNS servers into addresses with port 53 unless
// one is given ("[2001:db8::1]:5353").
func parseDNS(servers []string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, s := range servers {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("DNS server %q: not an address", s)
		}
		out = append(out, netip.AddrPortFrom(a.Unmap(), 53))
	}
	return out, nil
}
