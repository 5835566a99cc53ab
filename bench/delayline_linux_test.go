package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	"github.com/simproof/simproof/internal/nstest"
)

// TestDelayLine splices a delay line into a veth between two namespaces
// and checks what the bench relies on: addresses pass untouched, a TCP
// connect cannot complete before two one-way delays (SYN, SYN-ACK), a
// megabyte crosses intact (checksum and GSO state survive: the virtio-net
// header) with nothing dropped.
func TestDelayLine(t *testing.T) {
	nstest.RequireRoot(t)
	a, b, mid := nstest.NewNS(t, "da"), nstest.NewNS(t, "db"), nstest.NewNS(t, "dm")
	mid.Sysctl(t, "net/ipv6/conf/all/disable_ipv6", "1")
	mid.Sysctl(t, "net/ipv6/conf/default/disable_ipv6", "1")
	nstest.Veth(t, a, "x0", b, "y0")
	a.AddAddr(t, "x0", "192.0.2.1/24")
	b.AddAddr(t, "y0", "192.0.2.2/24")

	h := newHarness(testWriter{t})
	t.Cleanup(h.close)
	var ma, mb string
	if err := h.guard(func() (err error) {
		ma, mb, err = splice(h, a, "x0", b, "y0", mid)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	const delay = 20 * time.Millisecond
	socks, err := openInNS(mid.Path(), []delaySpec{{A: ma, B: mb, Delay: delay}})
	if err != nil {
		t.Fatal(err)
	}
	d := &delayLine{}
	d.direction(socks[0], socks[1], delay)
	d.direction(socks[1], socks[0], delay)
	t.Cleanup(func() {
		for _, s := range socks {
			s.f.Close()
		}
		d.wg.Wait()
	})

	ln := b.Listen(t, "tcp", "192.0.2.2:9000")
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		if ra := c.RemoteAddr().(*net.TCPAddr).IP.String(); ra != "192.0.2.1" {
			t.Errorf("the far end saw %s, not the sender's address", ra)
		}
		buf, _ := io.ReadAll(io.LimitReader(c, int64(len(payload))))
		got <- buf
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t0 := time.Now()
	c, err := a.DialContext(&net.Dialer{})(ctx, "tcp", "192.0.2.2:9000")
	if err != nil {
		t.Fatalf("connect through the delay line: %v", err)
	}
	if el := time.Since(t0); el < 2*delay {
		t.Errorf("connect took %v: frames left before their %v delay", el, delay)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(payload); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.Close()
	select {
	case buf := <-got:
		if !bytes.Equal(buf, payload) {
			t.Fatalf("received %d bytes, not the %d sent", len(buf), len(payload))
		}
	case <-ctx.Done():
		t.Fatal("the megabyte did not arrive within 20 s (TCP stalled through the delay line)")
	}
	s := d.stats()
	if s.Dropped != 0 || s.Truncated != 0 || s.SendErrs != 0 {
		t.Errorf("stats %+v", s)
	}
	if s.Frames == 0 || s.Frames > 10000 {
		t.Errorf("%d frames forwarded for one connection and a megabyte", s.Frames)
	}
}
