package idlayr_test

import (
	"context"
	"testing"
)

// BenchmarkCheck runs whole v0.1 checks (create, two-hop device step, one
// GET) against an httptest TLS server on loopback, the token cached after
// the first. It measures the agent's own cost per check, not a network's.
func BenchmarkCheck(b *testing.B) {
	f := newFake(b)
	p := f.provider(b, nil)
	req := f.request(nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := p.Check(ctx, req)
		if err != nil || !*res.Verified {
			b.Fatalf("%v %+v", err, res)
		}
	}
}
