package main

import (
	"fmt"
	"sort"
)

// The round-trip lower bound of one check, counted from what the provider
// emulator saw (its request log) and from which connections the client
// already had (the check's trace, the server client's dial count).
//
// Every request costs one round trip on its path. A connection costs one
// more for the TCP handshake and, for https, one more for the TLS 1.3
// handshake — once per origin and path within the check (the best reuse
// possible), and not at all when the client carried the connection over
// from an earlier check. Only the first poll of an IDlayr check counts:
// the result is ready as soon as the device step ends, so further polls are
// overhead, not bound. Address resolution costs one round trip on a path
// whose gateway was not in the neighbour cache when the check started (a
// freshly configured bearer); DNS costs nothing here (the bench dials
// addresses).

type pathSide int

const (
	sideDevice pathSide = iota // over the modem (wwan, 2×wwanDelay per round trip)
	sideServer                 // the provider API calls (eth0, 2×ethDelay)
)

func (s pathSide) String() string { return [...]string{"device", "server"}[s] }

// obsReq is one request the emulator saw.
type obsReq struct {
	Side   pathSide
	Origin string // scheme://host:port
	TLS    bool
	Poll   bool // an IDlayr GET of the check's state
}

// flowCount is a check's round trips, by path.
type flowCount struct {
	Requests   [2]int // requests counted in the bound
	TCP, TLS   [2]int // handshakes counted in the bound
	ARP        [2]int // the gateway's address had to be resolved first
	ExtraPolls int    // polls beyond the first: not in the bound
	Origins    [2][]string
}

func (f flowCount) RTTs(s pathSide) int { return f.Requests[s] + f.TCP[s] + f.TLS[s] + f.ARP[s] }

// BoundMS is the bound in milliseconds for the given round-trip times.
func (f flowCount) BoundMS(deviceRTT, serverRTT float64) float64 {
	return float64(f.RTTs(sideDevice))*deviceRTT + float64(f.RTTs(sideServer))*serverRTT
}

// String: "device 4 req + 2 TCP + 1 TLS = 7 RTT; API 2 req = 2 RTT".
func (f flowCount) String() string {
	side := func(name string, s pathSide) string {
		out := fmt.Sprintf("%s %d req", name, f.Requests[s])
		for _, x := range []struct {
			n    int
			what string
		}{{f.TCP[s], "TCP"}, {f.TLS[s], "TLS"}, {f.ARP[s], "ARP"}} {
			if x.n > 0 {
				out += fmt.Sprintf(" + %d %s", x.n, x.what)
			}
		}
		return out + fmt.Sprintf(" = %d RTT", f.RTTs(s))
	}
	return side("device", sideDevice) + "; " + side("API", sideServer)
}

// carriedKey names an origin on a path whose connection existed before the
// check started.
func carriedKey(s pathSide, origin string) string { return s.String() + "|" + origin }

// countFlow counts the bound of one check from its requests, in order;
// unresolved names the paths whose gateway was not yet resolved.
func countFlow(reqs []obsReq, carried map[string]bool, unresolved ...pathSide) flowCount {
	var f flowCount
	seen := map[string]bool{}
	polled := false
	for _, r := range reqs {
		if r.Poll {
			if polled {
				f.ExtraPolls++
				continue
			}
			polled = true
		}
		f.Requests[r.Side]++
		k := carriedKey(r.Side, r.Origin)
		if seen[k] {
			continue
		}
		seen[k] = true
		f.Origins[r.Side] = append(f.Origins[r.Side], r.Origin)
		if carried[k] {
			continue
		}
		f.TCP[r.Side]++
		if r.TLS {
			f.TLS[r.Side]++
		}
	}
	for _, s := range unresolved {
		if f.Requests[s] > 0 {
			f.ARP[s] = 1
		}
	}
	for s := range f.Origins {
		sort.Strings(f.Origins[s])
	}
	return f
}
