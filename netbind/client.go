package netbind

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ClientOptions configure a Pinned client; only Interface is required.
type ClientOptions struct {
	// Interface is the bearer's network interface ("wwan0").
	Interface string
	// DNS are the bearer's DNS servers ("100.64.0.53", "2001:db8::53",
	// "[2001:db8::53]:5353"); names are resolved through these only.
	DNS []string
	// RootCAs replaces the system certificate pool when set.
	RootCAs *x509.CertPool
	// ExtraCAFile is a PEM file whose certificates are trusted as well
	// (a provider emulator's test CA, a private PKI).
	ExtraCAFile string
	// Timeouts; zero takes the default in parentheses.
	DialTimeout           time.Duration // TCP connect (10s)
	TLSHandshakeTimeout   time.Duration // (10s)
	ResponseHeaderTimeout time.Duration // request written → headers read (20s)
	IdleConnTimeout       time.Duration // (30s)
	// MaxIdleConnsPerHost bounds kept-alive connections per host (2).
	MaxIdleConnsPerHost int
	// NetNS is the path of the network namespace the interface lives in
	// ("" = the process's own); sockets are created there. For tests.
	NetNS string
	// Source are the bearer's own addresses (one per family): sockets are
	// bound to them as well as to the interface, so the source address is
	// the SIM's even where no rule selects it.
	Source []string
	// Loopback accepts a loopback interface (lo) as the bearer: the demo
	// without root pins simulated modems there, each with its own source
	// address. Traffic then never leaves the host.
	Loopback bool
}

// Pinned is one modem interface's HTTP client. Every socket it opens —
// HTTP and DNS — is bound to the interface with SO_BINDTODEVICE, after
// checking that the interface exists, is up and has an address of the
// family dialed; otherwise the dial fails with a BearerError
// (errors.Is(err, modem.ErrNoBearer)). Names are resolved only through the
// bearer's DNS servers. Create one per interface and keep it: its Transport
// holds the kept-alive connections.
type Pinned struct {
	// Client does not follow redirects (CheckRedirect returns
	// http.ErrUseLastResponse): callers follow them hop by hop and record
	// each. It checks the bearer before every request, so a kept-alive
	// connection is not reused once the interface went away.
	Client *http.Client
	// Transport speaks HTTP/1.1 only, never uses a proxy (whatever the
	// environment says) and dials through DialContext.
	Transport *http.Transport
	// Resolver is Go's resolver asking only the bearer's DNS servers,
	// rotating across them, over sockets bound to the interface. Go still
	// answers names listed in /etc/hosts itself; /etc/resolv.conf
	// contributes only its options (timeouts, search list).
	Resolver *net.Resolver

	iface      string
	dns        []netip.AddrPort
	src4, src6 netip.Addr // bearer addresses sockets bind to (zero: the kernel picks)
	loopback   bool
	next       atomic.Uint64 // rotation over dns
	sys        pinSys        // per-OS state: netlink handle, namespace, dialer
}

// Defaults for ClientOptions' zero values.
const (
	DefaultDialTimeout           = 10 * time.Second
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultResponseHeaderTimeout = 20 * time.Second
	DefaultIdleConnTimeout       = 30 * time.Second
	DefaultMaxIdleConnsPerHost   = 2
)

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// NewClient builds the pinned client of one interface. It does not require
// the interface to be up yet: that is checked at every dial.
func NewClient(opts ClientOptions) (*Pinned, error) {
	if opts.Interface == "" {
		return nil, errors.New("pinned client: no interface")
	}
	dns, err := parseDNS(opts.DNS)
	if err != nil {
		return nil, fmt.Errorf("pinned client for %s: %w", opts.Interface, err)
	}
	tc, err := tlsConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("pinned client for %s: %w", opts.Interface, err)
	}
	p := &Pinned{iface: opts.Interface, dns: dns, loopback: opts.Loopback}
	for _, a := range opts.Source {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return nil, fmt.Errorf("pinned client for %s: source address %q: %w", opts.Interface, a, err)
		}
		if ip.Is4() {
			p.src4 = ip
		} else {
			p.src6 = ip
		}
	}
	if err := p.initSys(opts); err != nil {
		return nil, fmt.Errorf("pinned client for %s: %w", opts.Interface, err)
	}
	p.Resolver = &net.Resolver{PreferGo: true, StrictErrors: true, Dial: p.dialDNS}
	var protos http.Protocols
	protos.SetHTTP1(true)
	p.Transport = &http.Transport{
		Proxy:                  nil,
		DialContext:            p.DialContext,
		TLSClientConfig:        tc,
		Protocols:              &protos,
		ForceAttemptHTTP2:      false,
		TLSHandshakeTimeout:    orDefault(opts.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout),
		ResponseHeaderTimeout:  orDefault(opts.ResponseHeaderTimeout, DefaultResponseHeaderTimeout),
		IdleConnTimeout:        orDefault(opts.IdleConnTimeout, DefaultIdleConnTimeout),
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           4 * orDefault(opts.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost),
		MaxIdleConnsPerHost:    orDefault(opts.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost),
		MaxResponseHeaderBytes: 64 << 10,
	}
	p.Client = &http.Client{
		Transport:     &bearerGuard{p: p},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return p, nil
}

// Interface is the interface the client is pinned to.
func (p *Pinned) Interface() string { return p.iface }

// Close drops idle connections and releases the client's handles.
func (p *Pinned) Close() error {
	p.Transport.CloseIdleConnections()
	return p.closeSys()
}

// CheckBearer reports whether the interface can carry traffic now: it
// exists, is up with carrier and has a global address. The error is a
// BearerError.
func (p *Pinned) CheckBearer() error {
	_, err := p.bearer()
	return err
}

// DialContext connects through the interface only: literal addresses
// directly, names through the bearer's DNS; only families the interface
// has an address of are tried, one after another on this goroutine.
func (p *Pinned) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s via %s: %w", address, p.iface, err)
	}
	have, err := p.bearer()
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, perr := netip.ParseAddr(host); perr == nil {
		ip = ip.Unmap()
		if err := requireFamilies(p.iface, have, familyOf(ip)); err != nil {
			return nil, err
		}
		ips = []netip.Addr{ip}
	} else if ips, err = p.lookup(ctx, host, have); err != nil {
		return nil, fmt.Errorf("dial %s via %s: %w", address, p.iface, err)
	}
	var first error
	for _, ip := range ips {
		c, err := p.dialSocket(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("dial %s via %s: %w", address, p.iface, first)
}

func (p *Pinned) lookup(ctx context.Context, host string, have family) ([]netip.Addr, error) {
	network := map[family]string{fam4: "ip4", fam6: "ip6", fam4 | fam6: "ip"}[have]
	addrs, err := p.Resolver.LookupNetIP(ctx, network, host)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		if a = a.Unmap(); have&familyOf(a) != 0 {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolve %s: no %s address", host, have)
	}
	return out, nil
}

// dialDNS is the resolver's Dial: it ignores the server Go read from
// /etc/resolv.conf and dials the next bearer DNS server of a family the
// interface has.
func (p *Pinned) dialDNS(ctx context.Context, network, _ string) (net.Conn, error) {
	have, err := p.bearer()
	if err != nil {
		return nil, err
	}
	if n := uint64(len(p.dns)); n > 0 {
		start := p.next.Add(1) - 1
		for i := range n {
			s := p.dns[(start+i)%n]
			if have&familyOf(s.Addr()) != 0 {
				return p.dialSocket(ctx, network, s.String())
			}
		}
	}
	return nil, fmt.Errorf("%s: %w (servers %v, interface has %s)", p.iface, ErrNoDNS, p.dns, have)
}

// bearerGuard refuses requests while the bearer is unusable and drops the
// idle connections then, so none is reused after the interface came back
// with another address.
type bearerGuard struct{ p *Pinned }

func (g *bearerGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, err := g.p.bearer(); err != nil {
		g.p.Transport.CloseIdleConnections()
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return g.p.Transport.RoundTrip(req)
}

func tlsConfig(o ClientOptions) (*tls.Config, error) {
	var pool *x509.CertPool
	if o.RootCAs != nil {
		pool = o.RootCAs.Clone()
	} else {
		sys, err := x509.SystemCertPool()
		switch {
		case err == nil:
			pool = sys
		case o.ExtraCAFile != "":
			pool = x509.NewCertPool()
		default:
			return nil, fmt.Errorf("system certificates: %w", err)
		}
	}
	if o.ExtraCAFile != "" {
		pem, err := os.ReadFile(o.ExtraCAFile)
		if err != nil {
			return nil, fmt.Errorf("extra CA: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("extra CA %s: no PEM certificate", o.ExtraCAFile)
		}
	}
	// A session cache per modem: resumption saves certificate verification
	// CPU on the device step's new connections (not a round trip in TLS 1.3).
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(16)}, nil
}

// HopInfo is the connection one request went out on, for the check trace.
type HopInfo struct {
	// Interface is the device the socket is bound to, read back from the
	// socket itself (SO_BINDTODEVICE); empty if it is not bound.
	Interface string
	Local     netip.AddrPort
	Remote    netip.AddrPort
	Reused    bool // a kept-alive connection
}

// TraceHop returns a context that records the connection a request made
// with it uses (any http.Client), and a function returning what was
// recorded; it is the zero HopInfo if no connection was obtained.
func TraceHop(ctx context.Context) (context.Context, func() HopInfo) {
	var (
		mu  sync.Mutex
		hop HopInfo
	)
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		h := HopInfo{Reused: info.Reused}
		c := info.Conn
		if u, ok := c.(interface{ NetConn() net.Conn }); ok { // *tls.Conn
			c = u.NetConn()
		}
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
			h.Local = a.AddrPort()
		}
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			h.Remote = a.AddrPort()
		}
		h.Interface = boundDevice(c)
		mu.Lock()
		hop = h
		mu.Unlock()
	}}
	return httptrace.WithClientTrace(ctx, trace), func() HopInfo {
		mu.Lock()
		defer mu.Unlock()
		return hop
	}
}

// Do sends one request (no redirect following) and returns the connection
// it used. On error the HopInfo is whatever was obtained before it.
func (p *Pinned) Do(req *http.Request) (*http.Response, HopInfo, error) {
	ctx, hop := TraceHop(req.Context())
	resp, err := p.Client.Do(req.WithContext(ctx))
	return resp, hop(), err
}
