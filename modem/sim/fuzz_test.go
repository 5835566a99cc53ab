package sim

import "testing"

// FuzzCommandLine runs arbitrary command lines against one port: nothing
// may panic, and every line gets exactly one final answer or error.
func FuzzCommandLine(f *testing.F) {
	for _, s := range []string{
		"", "E0V1", "+CGDCONT=1,\"IP\",\"a;b\"", "+CRSM=176,12258,0,0,10", "D*99***1#",
		"+CGACT=1,1;+CGCONTRDP", "S3=13", "&C1&D2", "+COPS=1,2,\"00101\"", "+CPIN=\"1234\"",
		"+CGPIAF=1,1,1,1;+CGPADDR", "+CGDCONT=\"", "Z", "+CMEE=2;+X", "\xff\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		m := New(DefaultIdentity(0))
		s := newSession(m, nil, nil)
		m.sessions[s] = struct{}{}
		m.mu.Lock()
		out := m.execute(s, body)
		m.mu.Unlock()
		if len(out) == 0 && !s.cfg.quiet {
			t.Fatalf("no answer to %q", body)
		}
	})
}
