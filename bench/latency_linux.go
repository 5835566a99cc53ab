package main

import (
	"bytes"
	"context"
	"crypto/tls"
	_ "embed"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/simproof/simproof/agent"
	"github.com/simproof/simproof/netbind"
	"github.com/simproof/simproof/verify/emulator"
)

//go:embed baseline/idlayr.sh
var idlayrScript []byte

//go:embed baseline/plasgate.sh
var plasgateScript []byte

var mobileRange = netip.MustParsePrefix("100.64.0.0/10")

// sample is one check as measured.
type sample struct {
	Total  time.Duration // as the API client (or the script) saw it
	Device time.Duration // sum of the trace's hop durations (simproof only)
	// PreDevice is from "running" to the device stage (the events stream):
	// bearer check and pinning, plus token and create for IDlayr.
	PreDevice time.Duration
	Flow      flowCount
	DevConns  int // device connections opened (from the trace)
	SrvConns  int // server-side connections opened (dial count)
	Tokens    int // tokens the check fetched
}

func (r *rig) rtts() (dev, srv float64) { return 2 * ms(r.net.wwanDelay), 2 * ms(r.net.ethDelay) }

func (s sample) boundMS(r *rig) float64 {
	d, v := r.rtts()
	return s.Flow.BoundMS(d, v)
}

// obsReqs turns the emulator's log into the bound's requests.
func obsReqs(reqs []emulator.Request) []obsReq {
	var out []obsReq
	for _, q := range reqs {
		side := sideServer
		if mobileRange.Contains(q.Source) {
			side = sideDevice
		}
		origin := map[emulator.Role]string{emulator.RoleIDlayr: idlayrURL, emulator.RolePlasGate: plasgateURL,
			emulator.RoleOperator: operatorURL}[q.Role]
		poll := q.Role == emulator.RoleIDlayr && side == sideServer && q.Method == "GET" &&
			strings.HasPrefix(q.Path, "/phone_check/") && strings.Count(q.Path, "/") == 4
		out = append(out, obsReq{Side: side, Origin: origin, TLS: q.TLS, Poll: poll})
	}
	return out
}

func hopOrigin(url, remote string) string {
	scheme, _, _ := strings.Cut(url, "://")
	return scheme + "://" + remote
}

// seen holds, per modem, every local address:port its checks' traces used:
// a hop on one of them rode a kept-alive connection.
type seenConns map[int]map[string]bool

// measured turns one finished simproof check into a sample.
func (r *rig) measured(c *agent.Check, total time.Duration, i int, dials int64, seen seenConns, unresolved []pathSide) sample {
	s := sample{Total: total, SrvConns: int(dials)}
	if d, ok := r.events.between(c.ID, "running", "", "running", "device"); ok {
		s.PreDevice = d
	}
	if seen[i] == nil {
		seen[i] = map[string]bool{}
	}
	carried := map[string]bool{}
	fresh := map[string]bool{}
	for _, h := range c.Trace {
		s.Device += time.Duration(h.DurationMS * float64(time.Millisecond))
		o := hopOrigin(h.URL, h.RemoteAddress)
		k := carriedKey(sideDevice, o)
		if _, done := carried[k]; !done {
			carried[k] = seen[i][h.LocalAddress]
		}
		if !seen[i][h.LocalAddress] {
			fresh[h.LocalAddress] = true
		}
	}
	for a := range fresh {
		seen[i][a] = true
	}
	s.DevConns = len(fresh)
	reqs := r.emu.Requests()
	if dials == 0 {
		for _, q := range obsReqs(reqs) {
			if q.Side == sideServer {
				carried[carriedKey(sideServer, q.Origin)] = true
			}
		}
	}
	s.Flow = countFlow(obsReqs(reqs), carried, unresolved...)
	for _, q := range reqs {
		if q.Role == emulator.RoleIDlayr && q.Path == "/oauth2/v1/token" {
			s.Tokens++
		}
	}
	return s
}

// simproofSample runs one check through the daemon and measures it.
func (r *rig) simproofSample(ctx context.Context, provider string, i int, seen seenConns) (sample, error) {
	r.emu.ResetObservations()
	unresolved := r.unresolved(i)
	d0 := r.serverDials.Load()
	c, total, err := r.check(ctx, provider, i)
	if err != nil {
		return sample{}, err
	}
	return r.measured(c, total, i, r.serverDials.Load()-d0, seen, unresolved), nil
}

// unresolved lists the paths whose next hop is not in the device's
// neighbour cache now: modem i's carrier gateway on its wwan link (absent
// until the bearer is configured and used), and the gateway of the route
// to the providers (eth0).
func (r *rig) unresolved(i int) []pathSide {
	var out []pathSide
	nl := r.net.tp.Device.Netlink()
	known := func(ifname string, gw net.IP) bool {
		l, err := nl.LinkByName(ifname)
		if err != nil {
			return false
		}
		neighs, err := nl.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
		if err != nil {
			return false
		}
		for _, n := range neighs {
			if n.IP.Equal(gw) {
				return n.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|
					netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0
			}
		}
		return false
	}
	m := r.net.tp.Modems[i]
	if !known(m.Interface, m.Gateway4.AsSlice()) {
		out = append(out, sideDevice)
	}
	if routes, err := nl.RouteGet(net.ParseIP("192.0.2.80")); err == nil && len(routes) > 0 && routes[0].Gw != nil {
		if l, err := nl.LinkByIndex(routes[0].LinkIndex); err == nil && !known(l.Attrs().Name, routes[0].Gw) {
			out = append(out, sideServer)
		}
	}
	return out
}

// curlSample runs a baseline script in the device namespace over modem i's
// interface; its time is taken inside the namespace with bash's
// EPOCHREALTIME, so `ip netns exec` itself is not counted.
func (r *rig) curlSample(ctx context.Context, provider string, i int, scripts string) (sample, error) {
	r.emu.ResetObservations()
	unresolved := r.unresolved(i)
	env := append(os.Environ(), "LC_ALL=C", "IFACE="+r.net.tp.Modems[i].Interface, "CACERT="+r.caFile,
		"PHONE="+msisdn(i))
	script := filepath.Join(scripts, provider+".sh")
	switch provider {
	case "idlayr":
		// The emulator's own test credentials, passed to the script by name.
		env = append(env, "BASE="+idlayrURL, "CLIENT_ID="+emulator.DefaultClientID,
			envVar("CLIENT_SECRET", emulator.DefaultClientSecret))
	case "plasgate":
		env = append(env, "BASE="+plasgateURL, envVar("PRIVATE_KEY", emulator.DefaultPlasGatePrivateKey),
			envVar("SECRET", emulator.DefaultPlasGateSecret), "REDIRECT_URI="+redirectURI)
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := r.net.tp.Device.Command(cctx, "bash", "-c",
		`t0=$EPOCHREALTIME; bash "$0"; rc=$?; echo "elapsed $t0 $EPOCHREALTIME" >&2; exit $rc`, script)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	if err != nil {
		return sample{}, fmt.Errorf("curl %s on modem %d: %v: %s", provider, i, err, shortStderr(stderr.String()))
	}
	var t0, t1 float64
	if _, serr := fmt.Sscanf(last, "elapsed %f %f", &t0, &t1); serr != nil {
		return sample{}, fmt.Errorf("curl %s: no timing in %q", provider, last)
	}
	s := sample{Total: time.Duration((t1 - t0) * float64(time.Second))}
	s.Flow = countFlow(obsReqs(r.emu.Requests()), nil, unresolved...)
	for _, q := range r.emu.Requests() {
		if q.Role == emulator.RoleIDlayr && q.Path == "/oauth2/v1/token" {
			s.Tokens++
		}
	}
	return s, nil
}

// shortStderr keeps a script's stderr short; the scripts never print a secret.
func shortStderr(s string) string {
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// delayResult is the delay line's own check: a bare TCP connect and a TLS
// handshake through it, on both paths.
type delayResult struct {
	WWANConnect, WWANTLS, EthConnect, EthTLS Summary
}

// checkDelay times TCP connects and TLS handshakes from the device to the
// emulator's https port over wwan<i> (bound to it, from the SIM's address)
// and over eth0 (the default route).
func (r *rig) checkDelay(ctx context.Context, i, reps int) (delayResult, error) {
	m := r.net.tp.Modems[i]
	paths := []struct {
		d              net.Dialer
		connect, hands *[]float64
	}{
		{d: net.Dialer{LocalAddr: &net.TCPAddr{IP: m.Addr4.Addr().AsSlice()}, Control: bindDevice(m.Interface)}},
		{d: net.Dialer{}},
	}
	var res delayResult
	var wc, wt, ec, et []float64
	paths[0].connect, paths[0].hands = &wc, &wt
	paths[1].connect, paths[1].hands = &ec, &et
	for range reps {
		for _, p := range paths {
			dial := r.net.tp.Device.DialContext(&p.d)
			t0 := time.Now()
			c, err := dial(ctx, "tcp", "192.0.2.80:443")
			if err != nil {
				return res, fmt.Errorf("delay check: %w", err)
			}
			t1 := time.Now()
			tc := tls.Client(c, &tls.Config{RootCAs: r.roots, ServerName: "192.0.2.80"})
			err = tc.HandshakeContext(ctx)
			t2 := time.Now()
			tc.Close()
			if err != nil {
				return res, fmt.Errorf("delay check: TLS: %w", err)
			}
			*p.connect = append(*p.connect, ms(t1.Sub(t0)))
			*p.hands = append(*p.hands, ms(t2.Sub(t1)))
		}
	}
	res.WWANConnect, res.WWANTLS, res.EthConnect, res.EthTLS = summarize(wc), summarize(wt), summarize(ec), summarize(et)
	return res, nil
}

// latencyResult is section 1.
type latencyResult struct {
	Delay                                  delayResult
	ColdIDlayr, ColdPlasGate               []sample
	WarmIDlayr, WarmPlasGate               []sample
	CurlIDlayr, CurlPlasGate               []sample
	ServerSessionCache, DeviceSessionCache bool // TLS resumption possible at all
	ServerMaxIdlePerHost                   int
}

func runLatency(ctx context.Context, r *rig, o options, progress func(string)) (*latencyResult, error) {
	res := &latencyResult{}
	seen := seenConns{}
	scripts := r.h.TempDir()
	for name, b := range map[string][]byte{"idlayr.sh": idlayrScript, "plasgate.sh": plasgateScript} {
		if err := os.WriteFile(filepath.Join(scripts, name), b, 0o755); err != nil {
			return nil, err
		}
	}
	// What the product's clients can reuse at all: read from the clients
	// simproofd builds, not assumed.
	st := r.serverClient(0).Transport.(*http.Transport)
	res.ServerSessionCache = st.TLSClientConfig != nil && st.TLSClientConfig.ClientSessionCache != nil
	res.ServerMaxIdlePerHost = st.MaxIdleConnsPerHost
	if res.ServerMaxIdlePerHost == 0 {
		res.ServerMaxIdlePerHost = http.DefaultMaxIdleConnsPerHost
	}
	pc, err := netbind.NewClient(netbind.ClientOptions{Interface: r.net.tp.Modems[0].Interface, RootCAs: r.roots,
		NetNS: r.net.tp.Device.Path()})
	if err != nil {
		return nil, err
	}
	res.DeviceSessionCache = pc.Transport.TLSClientConfig != nil && pc.Transport.TLSClientConfig.ClientSessionCache != nil
	pc.Close()

	// Cold: the first check of a modem, with providers that have nothing
	// cached (no token, no kept-alive connection): a fresh modem and fresh
	// provider clients for each sample.
	next := 0
	for k := range o.cold {
		for _, p := range []string{"idlayr", "plasgate"} {
			if next >= len(r.ids) {
				break
			}
			progress(fmt.Sprintf("cold %s check %d/%d on modem %d", p, k+1, o.cold, next))
			if err := r.freshProviders(); err != nil {
				return nil, err
			}
			s, err := r.simproofSample(ctx, p, next, seen)
			if err != nil {
				return nil, err
			}
			next++
			if p == "idlayr" {
				res.ColdIDlayr = append(res.ColdIDlayr, s)
			} else {
				res.ColdPlasGate = append(res.ColdPlasGate, s)
			}
		}
	}
	// Modem 0's bearer is configured now: check the delay line itself.
	progress("delay line check: TCP connects and TLS handshakes")
	if res.Delay, err = r.checkDelay(ctx, 0, max(o.reps, 20)); err != nil {
		return nil, err
	}
	// Warm: the same modem again and again, the way a device re-verifies;
	// one unrecorded check each first so the token is cached.
	for _, p := range []string{"idlayr", "plasgate"} {
		if _, err := r.simproofSample(ctx, p, 0, seen); err != nil {
			return nil, err
		}
	}
	for k := range o.reps {
		progress(fmt.Sprintf("warm round %d/%d: simproof and curl, IDlayr and PlasGate", k+1, o.reps))
		for _, step := range []struct {
			curl     bool
			provider string
			into     *[]sample
		}{
			{false, "idlayr", &res.WarmIDlayr}, {true, "idlayr", &res.CurlIDlayr},
			{false, "plasgate", &res.WarmPlasGate}, {true, "plasgate", &res.CurlPlasGate},
		} {
			var s sample
			var err error
			if step.curl {
				s, err = r.curlSample(ctx, step.provider, 0, scripts)
			} else {
				s, err = r.simproofSample(ctx, step.provider, 0, seen)
			}
			if err != nil {
				return nil, err
			}
			*step.into = append(*step.into, s)
		}
	}
	return res, nil
}

func envVar(k, v string) string { return k + "=" + v }
