package nstest

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSServer is a tiny authoritative UDP DNS server answering A and AAAA
// queries from a fixed table, counting every query it receives.
type DNSServer struct {
	Addrs   []netip.AddrPort // where it listens
	records map[string][]netip.Addr
	queries atomic.Int64
}

// StartDNS serves records (name → addresses; names without the trailing
// dot, case-insensitive) on each UDP address (e.g. "100.64.255.53:53")
// inside ns until the test ends. Listen on specific addresses, not a
// wildcard: resolvers drop answers from another source address. Unknown
// names get NXDOMAIN; a known name without addresses of the asked type gets
// an empty answer.
func StartDNS(t testing.TB, ns *NS, records map[string][]netip.Addr, addrs ...string) *DNSServer {
	t.Helper()
	s := &DNSServer{records: make(map[string][]netip.Addr, len(records))}
	for name, as := range records {
		s.records[strings.ToLower(strings.TrimSuffix(name, "."))] = as
	}
	for _, addr := range addrs {
		pc := ns.ListenPacket(t, "udp", addr)
		s.Addrs = append(s.Addrs, pc.LocalAddr().(*net.UDPAddr).AddrPort())
		s.serve(t, pc)
	}
	return s
}

func (s *DNSServer) serve(t testing.TB, pc net.PacketConn) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("nstest: dns %s: %v", pc.LocalAddr(), err)
				}
				return
			}
			s.queries.Add(1)
			if resp, ok := s.answer(buf[:n]); ok {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	// Registered after ListenPacket's cleanup, so it runs first: close, then
	// wait for the loop so no t.Errorf races the end of the test.
	t.Cleanup(func() { pc.Close(); wg.Wait() })
}

// Queries is how many queries the server has received.
func (s *DNSServer) Queries() int64 { return s.queries.Load() }

func (s *DNSServer) answer(req []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil || h.Response {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	addrs, known := s.records[name]
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	rrh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}
	for _, a := range addrs {
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			if b.AResource(rrh, dnsmessage.AResource{A: a.As4()}) != nil {
				return nil, false
			}
		case q.Type == dnsmessage.TypeAAAA && a.Is6():
			if b.AAAAResource(rrh, dnsmessage.AAAAResource{AAAA: a.As16()}) != nil {
				return nil, false
			}
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
