package main

import (
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		line string
		want time.Duration
		ok   bool
	}{
		{"1234 (simproofd) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 100 0 0", 3 * time.Second, true},
		// A command name with spaces and a parenthesis.
		{"77 (a b) c)) R 1 2 3 4 5 6 7 8 9 10 7 3 0 0", 100 * time.Millisecond, true},
		{"77 (x) R 1 2", 0, false},
		{"no name here", 0, false},
		{"77 (x) R 1 2 3 4 5 6 7 8 9 10 u s 0", 0, false},
	}
	for _, tc := range tests {
		got, err := parseStatCPU(tc.line)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseStatCPU(%q) = %v, %v; want %v ok=%v", tc.line, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseDelaySpec(t *testing.T) {
	tests := []struct {
		in   string
		want delaySpec
		ok   bool
	}{
		{"p-wwan0,p-c-wwan0,30ms", delaySpec{"p-wwan0", "p-c-wwan0", 30 * time.Millisecond}, true},
		{"a,b,0s", delaySpec{"a", "b", 0}, true},
		{"a,b", delaySpec{}, false},
		{",b,1ms", delaySpec{}, false},
		{"a,b,-1ms", delaySpec{}, false},
		{"a,b,soon", delaySpec{}, false},
	}
	for _, tc := range tests {
		got, err := parseDelaySpec(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseDelaySpec(%q) = %+v, %v; want %+v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err == nil {
			if back, _ := parseDelaySpec(got.String()); back != got {
				t.Errorf("%q does not round-trip: %+v", got.String(), back)
			}
		}
	}
}

func TestHarnessGuardAndCleanup(t *testing.T) {
	h := newHarness(testWriter{t})
	var order []int
	h.Cleanup(func() { order = append(order, 1) })
	h.Cleanup(func() { order = append(order, 2); h.Fatalf("fails in cleanup") })
	err := h.guard(func() error {
		h.Fatalf("stop at %d", 7)
		return nil
	})
	if err == nil || err.Error() != "stop at 7" {
		t.Errorf("guard returned %v", err)
	}
	h.close()
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		t.Errorf("cleanups ran in order %v, want [2 1]", order)
	}
	defer func() {
		if recover() == nil {
			t.Error("a panic that is not a harness Fatal was swallowed")
		}
	}()
	_ = h.guard(func() error { panic("other") })
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
