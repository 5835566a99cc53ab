package emulator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Role is one of the three services the emulator plays. Each listener given
// to Serve answers for exactly one role.
type Role int

const (
	// RoleIDlayr is the IDlayr API: OAuth token, PhoneCheck v0.1/v0.2,
	// coverage. Served over HTTPS.
	RoleIDlayr Role = iota + 1
	// RolePlasGate is the PlasGate IP Verification API: authenticate,
	// callback, ip-auth/check-info. Served over HTTPS.
	RolePlasGate
	// RoleOperator is the mobile operator's identification hops. Served
	// over plain HTTP, as real header-enrichment endpoints are.
	RoleOperator
)

func (r Role) String() string {
	switch r {
	case RoleIDlayr:
		return "idlayr"
	case RolePlasGate:
		return "plasgate"
	case RoleOperator:
		return "operator"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// Defaults used when the Config leaves a field empty. The IDlayr secret
// deliberately holds '+', '/', '=' and ':' so that the raw (seed) and the
// RFC 6749 form-escaped Basic encodings differ.
const (
	DefaultClientID           = "emulator-client"
	DefaultClientSecret       = "s3cret+/=:emulator"
	DefaultPlasGatePrivateKey = "emulator-private-key_xP4tZ-G7fn3Y"
	DefaultPlasGateSecret     = "$5$rounds=535000$emulator$x-secret"
	DefaultCheckTTL           = 60 * time.Second
	DefaultTokenTTL           = time.Hour
	DefaultCodeTTL            = 5 * time.Minute
)

// DefaultDNSNames are always in the leaf certificate.
var DefaultDNSNames = []string{"api.idlayr.test", "cloudapi.plasgate.test", "operator.test"}

// maxBody caps every request body the emulator reads.
const maxBody = 64 << 10

// Network describes the emulated operator as coverage reports it.
type Network struct {
	CountryCode string // ISO 3166 alpha-2, default "GB"
	NetworkID   string // MCC+MNC, default "23499"
	NetworkName string // default "Emulated Mobile"
}

// Profile is the KYC data PlasGate's profile scope returns for a subscriber.
type Profile struct {
	GivenName                    string  `json:"given_name"`
	FamilyName                   string  `json:"family_name"`
	Birthdate                    string  `json:"birthdate"`
	Gender                       string  `json:"gender"`
	PersonalIdentificationNumber string  `json:"personal_identification_number"`
	Address                      Address `json:"address"`
}

// Address is part of Profile.
type Address struct {
	StreetAddress string `json:"street_address"`
	Locality      string `json:"locality"`
	PostalCode    string `json:"postal_code"`
}

// Config configures an Emulator. Every zero value works.
type Config struct {
	// Public base URLs: what appears in check_url hrefs, Locations and
	// self links. Empty: the address of the first listener served for the
	// role (https://IP:port, or http:// for the operator). They can be
	// changed later with SetBaseURL.
	IDlayrURL, PlasGateURL, OperatorURL string

	// Extra names and addresses for the leaf certificate, beside
	// DefaultDNSNames, the hosts of the base URLs, 127.0.0.1, ::1 and the
	// local address of every TLS connection accepted (added on demand).
	DNSNames []string
	IPs      []netip.Addr
	// CertNotBefore, when set, starts the CA's and leaf's validity there
	// (a future time reproduces a device whose clock is not yet synced).
	CertNotBefore time.Time

	// IDlayr credentials (defaults DefaultClientID, DefaultClientSecret).
	ClientID, ClientSecret string
	// PlasGate credentials (defaults DefaultPlasGatePrivateKey,
	// DefaultPlasGateSecret).
	PlasGatePrivateKey, PlasGateSecret string
	// PlasGateRedirectURIs, when non-empty, is the registered allow-list
	// for redirect_uri; empty accepts any absolute http(s) URI.
	PlasGateRedirectURIs []string

	// Subscribers maps a source address (as the operator sees it) to the
	// MSISDN (E.164 digits, no '+') the operator attaches to it.
	Subscribers map[netip.Addr]string
	// MobileRanges are the operator's address ranges. An address is mobile
	// when it is in one of them or in Subscribers.
	MobileRanges []netip.Prefix
	// Network is what coverage reports.
	Network Network
	// Profiles holds the KYC data per MSISDN; a subscriber without one
	// gets the seed's example profile.
	Profiles map[string]Profile

	// CheckTTL is an IDlayr check's ttl (default 60s; whole seconds on the
	// wire). TokenTTL is the access token lifetime (default 1h). CodeTTL is
	// how long a PlasGate code can be redeemed (default 5m).
	CheckTTL, TokenTTL, CodeTTL time.Duration

	// DisableSandbox turns off the IDlayr sandbox number rules.
	DisableSandbox bool

	// Now is the clock for check, token and code expiry (default
	// time.Now); tests pass a fake one instead of sleeping.
	Now func() time.Time
}

// Emulator plays IDlayr, PlasGate and a mobile operator. Its methods are safe
// for concurrent use.
type Emulator struct {
	cfg   Config
	certs *certs
	now   func() time.Time

	ctx    context.Context // cancelled by Close; slow hops watch it
	cancel context.CancelFunc

	mu      sync.Mutex // guards everything below
	closed  bool
	base    map[Role]string
	servers []*http.Server
	subs    map[netip.Addr]string
	ranges  []netip.Prefix
	faults  map[string]Faults // by phone; "" is the default
	tokens  map[string]*token
	checks  map[string]*check
	// createSeen counts create requests per number for CreateRateLimit.
	createSeen map[string]int
	sessions   map[string]*opSession
	pgAuths    map[string]*pgAuth // by authorization id
	pgCodes    map[string]*pgAuth // by code
	stats      Stats
	requests   []Request
	revoked    time.Time // tokens issued before this are invalid
}

// New builds an Emulator and its test CA; it serves nothing until Serve.
func New(cfg Config) (*Emulator, error) {
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = DefaultClientSecret
	}
	if cfg.PlasGatePrivateKey == "" {
		cfg.PlasGatePrivateKey = DefaultPlasGatePrivateKey
	}
	if cfg.PlasGateSecret == "" {
		cfg.PlasGateSecret = DefaultPlasGateSecret
	}
	if cfg.CheckTTL <= 0 {
		cfg.CheckTTL = DefaultCheckTTL
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = DefaultCodeTTL
	}
	if cfg.Network.CountryCode == "" {
		cfg.Network.CountryCode = "GB"
	}
	if cfg.Network.NetworkID == "" {
		cfg.Network.NetworkID = "23499"
	}
	if cfg.Network.NetworkName == "" {
		cfg.Network.NetworkName = "Emulated Mobile"
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	e := &Emulator{
		cfg:        cfg,
		now:        now,
		base:       map[Role]string{},
		subs:       map[netip.Addr]string{},
		faults:     map[string]Faults{},
		tokens:     map[string]*token{},
		checks:     map[string]*check{},
		createSeen: map[string]int{},
		sessions:   map[string]*opSession{},
		pgAuths:    map[string]*pgAuth{},
		pgCodes:    map[string]*pgAuth{},
	}
	for a, m := range cfg.Subscribers {
		e.subs[a.Unmap()] = strings.TrimPrefix(m, "+")
	}
	e.ranges = append(e.ranges, cfg.MobileRanges...)
	dns := append([]string{}, DefaultDNSNames...)
	dns = append(dns, cfg.DNSNames...)
	ips := append([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}, cfg.IPs...)
	for role, u := range map[Role]string{RoleIDlayr: cfg.IDlayrURL, RolePlasGate: cfg.PlasGateURL, RoleOperator: cfg.OperatorURL} {
		if u == "" {
			continue
		}
		pu, err := parseBase(u)
		if err != nil {
			return nil, fmt.Errorf("emulator: %s base URL: %w", role, err)
		}
		e.base[role] = pu
		h := hostOf(pu)
		if a, err := netip.ParseAddr(h); err == nil {
			ips = append(ips, a)
		} else {
			dns = append(dns, h)
		}
	}
	c, err := newCerts(dns, ips, cfg.CertNotBefore)
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	e.certs = c
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e, nil
}

// StartLoopback builds an Emulator and serves the three roles on
// 127.0.0.1:0 listeners: IDlayr and PlasGate over HTTPS, the operator over
// plain HTTP. Base URLs the Config leaves empty become those addresses. When
// Subscribers and MobileRanges are both empty, 127.0.0.1 is a mobile
// subscriber with MSISDN 447700900123 (so the demo matches out of the box).
func StartLoopback(cfg Config) (*Emulator, error) {
	if len(cfg.Subscribers) == 0 && len(cfg.MobileRanges) == 0 {
		cfg.Subscribers = map[netip.Addr]string{netip.MustParseAddr("127.0.0.1"): "447700900123"}
	}
	e, err := New(cfg)
	if err != nil {
		return nil, err
	}
	for _, r := range []struct {
		role Role
		tls  bool
	}{{RoleIDlayr, true}, {RolePlasGate, true}, {RoleOperator, false}} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("emulator: listen for %s: %w", r.role, err)
		}
		if err := e.Serve(r.role, l, r.tls); err != nil {
			l.Close()
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

// Serve answers role on l, over TLS (the emulator's leaf certificate) when
// useTLS is set. It returns at once; the listener is served in the
// background until Close. The first listener served for a role sets its base
// URL unless one is configured.
func (e *Emulator) Serve(role Role, l net.Listener, useTLS bool) error {
	var h http.Handler
	switch role {
	case RoleIDlayr:
		h = http.HandlerFunc(e.serveIDlayr)
	case RolePlasGate:
		h = http.HandlerFunc(e.servePlasGate)
	case RoleOperator:
		h = http.HandlerFunc(e.serveOperator)
	default:
		return fmt.Errorf("emulator: serve: unknown role %d", int(role))
	}
	srv := &http.Server{
		Handler:           e.observe(role, h),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
		// Tests make failing handshakes on purpose; the standard logger
		// would print each one. The emulator logs nothing.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	ln := net.Listener(noDelayListener{l})
	scheme := "http"
	if useTLS {
		scheme = "https"
		srv.TLSConfig = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: e.certs.getCertificate,
			NextProtos:     []string{"http/1.1"},
		}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errors.New("emulator: serve: closed")
	}
	e.servers = append(e.servers, srv)
	if _, ok := e.base[role]; !ok {
		e.base[role] = scheme + "://" + l.Addr().String()
	}
	e.mu.Unlock()
	if ap, err := netip.ParseAddrPort(l.Addr().String()); err == nil && !ap.Addr().IsUnspecified() {
		e.certs.addIP(ap.Addr())
	}
	go srv.Serve(ln) //nolint:errcheck // ErrServerClosed after Close is the normal end
	return nil
}

// Close stops every server and wakes every delayed hop.
func (e *Emulator) Close() error {
	e.mu.Lock()
	e.closed = true
	servers := e.servers
	e.servers = nil
	e.mu.Unlock()
	e.cancel()
	var errs []error
	for _, s := range servers {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// BaseURL is the public base URL of role ("" before it is served or set).
func (e *Emulator) BaseURL(role Role) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.base[role]
}

// SetBaseURL changes the public base URL of role (scheme://host[:port], no
// path). Checks created afterwards use it; hosts added here that are not in
// the certificate make TLS verification fail, as a wrong host would.
func (e *Emulator) SetBaseURL(role Role, u string) error {
	pu, err := parseBase(u)
	if err != nil {
		return fmt.Errorf("emulator: %s base URL: %w", role, err)
	}
	if a, err := netip.ParseAddr(hostOf(pu)); err == nil {
		e.certs.addIP(a)
	}
	e.mu.Lock()
	e.base[role] = pu
	e.mu.Unlock()
	return nil
}

// SetSubscriber maps a source address to an MSISDN ("" removes it).
func (e *Emulator) SetSubscriber(addr netip.Addr, msisdn string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if msisdn == "" {
		delete(e.subs, addr.Unmap())
		return
	}
	e.subs[addr.Unmap()] = strings.TrimPrefix(msisdn, "+")
}

// SetMobileRanges replaces the operator's mobile address ranges.
func (e *Emulator) SetMobileRanges(p []netip.Prefix) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ranges = append([]netip.Prefix(nil), p...)
}

// identify is the operator's view of a source address. Callers hold e.mu.
func (e *Emulator) identifyLocked(a netip.Addr) (mobile bool, msisdn string) {
	a = a.Unmap()
	if m, ok := e.subs[a]; ok {
		return true, m
	}
	for _, p := range e.ranges {
		if p.Contains(a) {
			return true, ""
		}
	}
	return false, ""
}

// Client returns an HTTP client for tests: it trusts the emulator's CA, keeps
// cookies, and does not follow redirects (each hop is walked by hand).
func (e *Emulator) Client() *http.Client {
	jar, _ := cookiejar.New(nil) // never fails with nil options
	return &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: e.CertPool(), MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: false,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Stats are counters since the emulator started (or ResetObservations).
type Stats struct {
	TokensIssued     int // IDlayr access tokens granted
	ChecksCreated    int // IDlayr checks created (v0.1 and v0.2)
	CoverageAnswered int // coverage lookups answered 200
	PlasGateAuths    int // authenticate requests that started a chain
	PlasGateCodes    int // codes issued to a redirect_uri
	PlasGateResults  int // exchanges answered with a verification result
	Requests         int // every request seen, all roles
}

// Request is one request the emulator saw. It holds no secrets: no query
// values, no bodies, no header values.
type Request struct {
	Role       Role
	Method     string
	Host       string
	Path       string     // decoded path
	QueryKeys  []string   // sorted names of the query parameters
	BodyKeys   []string   // sorted top-level keys of a JSON or form body
	Source     netip.Addr // the peer address
	TLS        bool
	Cookie     bool   // a Cookie header was present
	Auth       bool   // an Authorization header was present
	AuthKind   string // token endpoint: "basic", "basic-form-escaped", "client_secret_post"; else "bearer", "x-secret" or ""
	Status     int    // 0 when the client went away before an answer
	Delayed    bool   // a SlowHop delay was applied
	StartedAt  time.Time
	FinishedAt time.Time
}

// Stats returns the counters.
func (e *Emulator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Requests returns a copy of every request seen, oldest first (the newest
// 10000 are kept).
func (e *Emulator) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Request(nil), e.requests...)
}

// ResetObservations zeroes the counters and forgets the request log; checks,
// tokens and faults stay.
func (e *Emulator) ResetObservations() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats = Stats{}
	e.requests = nil
}

const maxRequestLog = 10000

type reqNote struct {
	authKind string
	bodyKeys []string
	delayed  bool
}

type noteKey struct{}

// note lets a handler add secret-free detail to the request's observation.
func note(r *http.Request) *reqNote {
	n, _ := r.Context().Value(noteKey{}).(*reqNote)
	if n == nil {
		return &reqNote{}
	}
	return n
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (e *Emulator) observe(role Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := &reqNote{}
		r = r.WithContext(context.WithValue(r.Context(), noteKey{}, n))
		sw := &statusWriter{ResponseWriter: w}
		start := e.now()
		h.ServeHTTP(sw, r)
		rec := Request{
			Role:       role,
			Method:     r.Method,
			Host:       r.Host,
			Path:       r.URL.Path,
			QueryKeys:  sortedKeys(r.URL.Query()),
			BodyKeys:   n.bodyKeys,
			Source:     sourceAddr(r),
			TLS:        r.TLS != nil,
			Cookie:     r.Header.Get("Cookie") != "",
			Auth:       r.Header.Get("Authorization") != "",
			AuthKind:   n.authKind,
			Status:     sw.status,
			Delayed:    n.delayed,
			StartedAt:  start,
			FinishedAt: e.now(),
		}
		e.mu.Lock()
		e.stats.Requests++
		if len(e.requests) >= maxRequestLog {
			e.requests = append(e.requests[:0:0], e.requests[len(e.requests)-maxRequestLog+1:]...)
		}
		e.requests = append(e.requests, rec)
		e.mu.Unlock()
	})
}

func sortedKeys[V any](m map[string]V) []string {
	if len(m) == 0 {
		return nil
	}
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

func sourceAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// noDelayListener sets TCP_NODELAY on every accepted connection. Go already
// does so for TCP conns; being explicit keeps it true for wrapped listeners
// and documents that the emulator depends on it (Nagle plus delayed ACKs
// would add a round trip per response over a delayed link).
type noDelayListener struct{ net.Listener }

func (l noDelayListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			return c, nil
		}
		// A conn whose option cannot be set is dropped rather than served
		// slowly; returning the error would stop the whole server.
		if err := tc.SetNoDelay(true); err != nil {
			c.Close()
			continue
		}
		return c, nil
	}
}

func parseBase(u string) (string, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	if (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return "", fmt.Errorf("%q is not an absolute http(s) URL", u)
	}
	if pu.Path != "" && pu.Path != "/" || pu.RawQuery != "" {
		return "", fmt.Errorf("%q has a path or query; give scheme://host[:port]", u)
	}
	return pu.Scheme + "://" + pu.Host, nil
}

func hostOf(base string) string {
	pu, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return pu.Hostname()
}
