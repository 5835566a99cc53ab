package main

import "testing"

func TestCountFlow(t *testing.T) {
	const (
		api = "https://192.0.2.80:443"
		op  = "http://192.0.2.80:80"
	)
	dev := func(origin string, tls bool) obsReq { return obsReq{Side: sideDevice, Origin: origin, TLS: tls} }
	srv := func(poll bool) obsReq { return obsReq{Side: sideServer, Origin: api, TLS: true, Poll: poll} }
	idlayr := []obsReq{srv(false), srv(false), dev(api, true), dev(op, false), dev(op, false), dev(api, true), srv(true)}
	tests := []struct {
		name       string
		reqs       []obsReq
		carried    map[string]bool
		unresolved []pathSide
		wantDev    int
		wantSrv    int
		wantExtra  int
	}{
		// token, create, 4 device hops, one poll; nothing kept alive:
		// device 4 + TCP×2 + TLS×1, API 3 + TCP + TLS.
		{name: "cold IDlayr", reqs: idlayr, wantDev: 7, wantSrv: 5},
		{name: "warm IDlayr", reqs: []obsReq{srv(false), dev(api, true), dev(op, false), dev(op, false), dev(api, true), srv(true)},
			carried: map[string]bool{carriedKey(sideDevice, api): true, carriedKey(sideDevice, op): true, carriedKey(sideServer, api): true},
			wantDev: 4, wantSrv: 2},
		{name: "only the operator connection kept", reqs: []obsReq{dev(api, true), dev(op, false), dev(api, true)},
			carried: map[string]bool{carriedKey(sideDevice, op): true}, wantDev: 5},
		{name: "extra polls are overhead", reqs: []obsReq{srv(true), srv(true), srv(true)}, wantSrv: 3, wantExtra: 2},
		{name: "fresh bearer resolves its gateway", reqs: []obsReq{dev(op, false)}, unresolved: []pathSide{sideDevice, sideServer},
			wantDev: 3},
		{name: "carried on one path only", reqs: []obsReq{srv(false), dev(api, true)},
			carried: map[string]bool{carriedKey(sideServer, api): true}, wantDev: 3, wantSrv: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := countFlow(tc.reqs, tc.carried, tc.unresolved...)
			if f.RTTs(sideDevice) != tc.wantDev || f.RTTs(sideServer) != tc.wantSrv || f.ExtraPolls != tc.wantExtra {
				t.Errorf("got %s, %d extra polls; want device %d, API %d, %d extra", f, f.ExtraPolls, tc.wantDev, tc.wantSrv, tc.wantExtra)
			}
		})
	}
}

func TestBoundMS(t *testing.T) {
	f := flowCount{Requests: [2]int{4, 2}, TCP: [2]int{2, 1}, TLS: [2]int{1, 1}}
	if got := f.BoundMS(60, 20); got != 7*60+4*20 {
		t.Errorf("bound %v ms, want %v", got, 7*60+4*20)
	}
	if s := f.String(); s != "device 4 req + 2 TCP + 1 TLS = 7 RTT; API 2 req + 1 TCP + 1 TLS = 4 RTT" {
		t.Errorf("String() = %q", s)
	}
}
