package agent

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/netbind"
)

// NetPinner applies bearers with netbind and keeps one pinned client per
// modem, rebuilt only when the interface or its DNS servers change (the
// client's Transport holds kept-alive connections worth keeping).
type NetPinner struct {
	binder *netbind.Binder
	manage netbind.Manage
	// loopback: bearers on lo (the built-in simulator without root) are
	// pinned there with their own source address; nothing is configured.
	loopback bool
	opts     netbind.ClientOptions // template: Interface and DNS set per modem

	mu      sync.Mutex
	clients map[string]*pinned
}

type pinned struct {
	iface   string
	dns     []string
	src     []string
	client  *netbind.Pinned
	applied netbind.Applied
}

// NewNetPinner returns the daemon's Pinner: bearers applied with b under
// policy manage, clients built from tmpl (Interface, DNS and Source are set
// per modem).
func NewNetPinner(b *netbind.Binder, manage netbind.Manage, tmpl netbind.ClientOptions) *NetPinner {
	return &NetPinner{binder: b, manage: manage, opts: tmpl, clients: map[string]*pinned{}}
}

func (p *NetPinner) Pin(ctx context.Context, modemID string, d modem.DataInfo) (*http.Client, error) {
	if !d.Connected || d.Interface == "" {
		return nil, fmt.Errorf("modem %s: %w: the data session is not up", modemID, modem.ErrNoBearer)
	}
	v4, v6 := d.IPv4, d.IPv6
	if v4 != nil && v4.Method == "ppp" || v6 != nil && v6.Method == "ppp" {
		return nil, fmt.Errorf("modem %s: %w: PPP bearers are not supported", modemID, modem.ErrUnsupported)
	}
	if v4 != nil && v4.Method == "dhcp" && v4.Address == "" {
		cfg, err := p.binder.DHCPv4(ctx, d.Interface)
		if err != nil {
			return nil, fmt.Errorf("modem %s: DHCP on %s: %w", modemID, d.Interface, err)
		}
		v4 = cfg
	}
	var applied netbind.Applied
	lo := p.loopback && d.Interface == "lo"
	if !lo {
		var err error
		applied, err = p.binder.Apply(ctx, netbind.Config{Interface: d.Interface, ModemID: modemID, IPv4: v4, IPv6: v6, Manage: p.manage})
		if err != nil {
			return nil, fmt.Errorf("modem %s: %w", modemID, err)
		}
	}
	// Bind to the bearer's own address where simproof put it there (or on
	// lo); on an interface someone else configured the modem's view of the
	// address may differ from the interface's.
	var src []string
	if lo || applied.Managed {
		for _, c := range []*modem.IPConfig{v4, v6} {
			if c != nil && c.Address != "" {
				src = append(src, c.Address)
			}
		}
	}
	var dns []string
	for _, c := range []*modem.IPConfig{v4, v6} {
		if c != nil {
			dns = append(dns, c.DNS...)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.clients[modemID]; ok {
		if cur.iface == d.Interface && slices.Equal(cur.dns, dns) && slices.Equal(cur.src, src) {
			cur.applied = applied
			return cur.client.Client, nil
		}
		cur.client.Close()
		delete(p.clients, modemID)
	}
	o := p.opts
	o.Interface, o.DNS, o.Source, o.Loopback = d.Interface, dns, src, lo
	c, err := netbind.NewClient(o)
	if err != nil {
		return nil, fmt.Errorf("modem %s: %w", modemID, err)
	}
	p.clients[modemID] = &pinned{iface: d.Interface, dns: dns, src: src, client: c, applied: applied}
	return c.Client, nil
}

func (p *NetPinner) Unpin(modemID string) {
	p.mu.Lock()
	cur, ok := p.clients[modemID]
	delete(p.clients, modemID)
	p.mu.Unlock()
	if !ok {
		return
	}
	cur.client.Close()
	if cur.applied.Interface != "" {
		_ = p.binder.Remove(context.Background(), cur.applied)
	}
	p.binder.Release(modemID)
}

// UnpinAll takes back every configuration this daemon applied (shutdown).
func (p *NetPinner) UnpinAll() {
	p.mu.Lock()
	ids := make([]string, 0, len(p.clients))
	for id := range p.clients {
		ids = append(ids, id)
	}
	p.mu.Unlock()
	for _, id := range ids {
		p.Unpin(id)
	}
}
