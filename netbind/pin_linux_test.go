package netbind_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/simproof/simproof/netbind"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestPinnedLeavesThroughBearer is the product's claim: through the pinned
// client the server sees the bearer's address and eth0, which holds the
// default routes, sends nothing — with a proxy in the environment too. A
// plain client on the same device goes out through eth0, which shows that
// the counter would catch a leak.
func TestPinnedLeavesThroughBearer(t *testing.T) {
	bn := newBench(t, 1)
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"} {
		t.Setenv(k, "http://203.0.113.1:3128")
	}
	p := bn.apply(t, 0, true, true)
	m := bn.tp.Modems[0]

	for _, tc := range []struct {
		name, url string
		want      netip.Addr
	}{
		{"IPv4 literal", url4(bn.tp), m.Addr4.Addr()},
		{"IPv6 literal", url6(bn.tp), m.Addr6.Addr()},
		{"name via bearer DNS", "http://" + testName + "/", netip.Addr{}},
		{"kept-alive again", url4(bn.tp), m.Addr4.Addr()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := bn.eth0Tx(t)
			got, hop, err := fetch(t, p, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if sent := bn.eth0Tx(t) - before; sent != 0 {
				t.Errorf("eth0 sent %d packets during the request", sent)
			}
			if tc.want.IsValid() && got != tc.want.String() {
				t.Errorf("server saw %s, want %s", got, tc.want)
			}
			if got != m.Addr4.Addr().String() && got != m.Addr6.Addr().String() {
				t.Errorf("server saw %s, not a %s address", got, m.Interface)
			}
			if hop.Interface != m.Interface || hop.Local.Addr().String() != got {
				t.Errorf("hop = %+v, want interface %s and local address %s", hop, m.Interface, got)
			}
		})
	}
	if n := bn.ispDNS.Queries(); n != 0 {
		t.Errorf("ISP DNS got %d queries", n)
	}
	if bn.carrierDNS.Queries() == 0 {
		t.Errorf("carrier DNS got no query for %s", testName)
	}

	t.Run("control: unpinned client leaves through eth0", func(t *testing.T) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			Proxy: nil, DisableKeepAlives: true, DialContext: bn.tp.Device.DialContext(&net.Dialer{})}}
		before := bn.eth0Tx(t)
		resp, err := c.Get(url4(bn.tp))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got, want := string(b), bn.tp.Eth0Addr4.Addr().String(); got != want {
			t.Errorf("server saw %s, want eth0's %s", got, want)
		}
		if bn.eth0Tx(t) == before {
			t.Errorf("eth0 counter did not move for a request through it")
		}
	})
}

// TestFailClosed breaks the bearer after a successful request (so a
// kept-alive connection exists) and requires the next request and lookup
// to fail with no_bearer, with nothing sent through eth0.
func TestFailClosed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, bn *bench)
	}{
		{"interface down", func(t *testing.T, bn *bench) {
			bn.tp.Device.SetDown(t, bn.tp.Modems[0].Interface)
		}},
		{"carrier lost", func(t *testing.T, bn *bench) {
			bn.tp.Carrier.SetDown(t, bn.tp.Modems[0].Peer)
		}},
		{"addresses removed", func(t *testing.T, bn *bench) {
			m := bn.tp.Modems[0]
			bn.tp.Device.DelAddr(t, m.Interface, m.Addr4.String())
			bn.tp.Device.DelAddr(t, m.Interface, m.Addr6.String())
		}},
		{"interface deleted", func(t *testing.T, bn *bench) {
			m := bn.tp.Modems[0]
			if err := bn.tp.Device.Netlink().LinkDel(bn.tp.Device.Link(t, m.Interface)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bn := newBench(t, 1)
			p := bn.apply(t, 0, true, true)
			if _, _, err := fetch(t, p, url4(bn.tp)); err != nil {
				t.Fatalf("request before the break: %v", err)
			}
			tc.breakIt(t, bn)
			before := bn.eth0Tx(t)
			for _, u := range []string{url4(bn.tp), url6(bn.tp), "http://" + testName + "/"} {
				_, _, err := fetch(t, p, u)
				requireNoBearer(t, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := p.Resolver.LookupNetIP(ctx, "ip", testName)
			if err == nil {
				t.Errorf("lookup succeeded with the bearer broken")
			}
			requireNoBearer(t, p.CheckBearer())
			if sent := bn.eth0Tx(t) - before; sent != 0 {
				t.Errorf("eth0 sent %d packets after the bearer broke", sent)
			}
			if n := bn.ispDNS.Queries(); n != 0 {
				t.Errorf("ISP DNS got %d queries", n)
			}
		})
	}
}

// TestNoRouteFailsOnBearer removes the modem's routes: the pinned socket
// then has no way out, and the dial fails rather than taking eth0's default.
func TestNoRouteFailsOnBearer(t *testing.T) {
	bn := newBench(t, 1)
	m := bn.tp.Modems[0]
	bn.apply(t, 0, true, true)
	p, err := netbind.NewClient(netbind.ClientOptions{Interface: m.Interface, NetNS: bn.tp.Device.Path(),
		DialTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Flush every route through the interface in every table but local.
	h := bn.tp.Device.Netlink()
	ifindex := bn.tp.Device.Link(t, m.Interface).Attrs().Index
	flushed := 0
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.LinkIndex == ifindex && r.Table != unix.RT_TABLE_LOCAL {
				if err := h.RouteDel(&r); err != nil {
					t.Fatalf("delete %v: %v", r, err)
				}
				flushed++
			}
		}
	}
	if flushed == 0 {
		t.Fatal("no route through the modem to remove")
	}
	before := bn.eth0Tx(t)
	for _, u := range []string{url4(bn.tp), url6(bn.tp)} {
		got, _, err := fetch(t, p, u)
		if err == nil {
			t.Errorf("%s succeeded without a route (server saw %s)", u, got)
		}
	}
	if sent := bn.eth0Tx(t) - before; sent != 0 {
		t.Errorf("eth0 sent %d packets", sent)
	}
}

// TestTwoModemsConcurrently runs requests on wwan0 and wwan1 in parallel;
// each must leave through its own interface.
func TestTwoModemsConcurrently(t *testing.T) {
	bn := newBench(t, 2)
	clients := []*netbind.Pinned{bn.apply(t, 0, true, true), bn.apply(t, 1, true, true)}
	before := bn.eth0Tx(t)
	const perModem = 6
	var wg sync.WaitGroup
	type result struct {
		modem int
		url   string
		got   string
		hop   netbind.HopInfo
		err   error
	}
	results := make(chan result, 2*perModem)
	for i, p := range clients {
		for j := range perModem {
			u := []string{url4(bn.tp), url6(bn.tp), "http://" + testName + "/"}[j%3]
			wg.Go(func() {
				got, hop, err := fetch(t, p, u)
				results <- result{i, u, got, hop, err}
			})
		}
	}
	wg.Wait()
	close(results)
	n := 0
	for r := range results {
		n++
		m := bn.tp.Modems[r.modem]
		if r.err != nil {
			t.Errorf("%s %s: %v", m.Interface, r.url, r.err)
			continue
		}
		if r.got != m.Addr4.Addr().String() && r.got != m.Addr6.Addr().String() {
			t.Errorf("%s %s: server saw %s", m.Interface, r.url, r.got)
		}
		if r.hop.Interface != m.Interface {
			t.Errorf("%s %s: socket bound to %q", m.Interface, r.url, r.hop.Interface)
		}
	}
	if n != 2*perModem {
		t.Errorf("%d results, want %d", n, 2*perModem)
	}
	if sent := bn.eth0Tx(t) - before; sent != 0 {
		t.Errorf("eth0 sent %d packets", sent)
	}
}
