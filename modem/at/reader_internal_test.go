package at

import (
	"reflect"
	"testing"
)

func TestSplitter(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       []string // successive reads
		max      int
		want     []string
		garbage  uint64
		overlong uint64
	}{
		{name: "crlf", in: []string{"\r\nOK\r\n"}, want: []string{"OK"}},
		{name: "lf only", in: []string{"A\nB\n"}, want: []string{"A", "B"}},
		{name: "cr only", in: []string{"A\rB\r"}, want: []string{"A", "B"}},
		{name: "echo glued", in: []string{"ATE0\r\r\nOK\r\n"}, want: []string{"ATE0", "OK"}},
		{name: "split reads", in: []string{"\r", "\nO", "K", "\r", "\n"}, want: []string{"OK"}},
		{name: "unterminated stays pending", in: []string{"OK\r\n+CREG: 1"}, want: []string{"OK"}},
		{name: "spaces trimmed, tab kept inside", in: []string{"  a\tb  \r\n \r\n"}, want: []string{"a\tb"}},
		{name: "nul and noise", in: []string{"\x00O\x00K\x1b\r\n\xff\x7f\r\n"}, want: []string{"OK"}, garbage: 5},
		{name: "utf-8 kept", in: []string{"Télé\r\n"}, want: []string{"Télé"}},
		{name: "exactly max", max: 4, in: []string{"ABCD\r\nOK\r\n"}, want: []string{"ABCD", "OK"}},
		{name: "overlong dropped", max: 4, in: []string{"ABCDE\r\nOK\r\n"}, want: []string{"OK"}, overlong: 1},
		{name: "overlong across reads", max: 4, in: []string{"ABC", "DEFGH", "IJ\r", "\nOK\r\n"}, want: []string{"OK"}, overlong: 1},
		{name: "two overlong", max: 2, in: []string{"AAA\nBBB\nOK\n"}, want: []string{"OK"}, overlong: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c counters
			max := tc.max
			if max == 0 {
				max = 4096
			}
			s := splitter{max: max, stats: &c}
			var got []string
			for _, r := range tc.in {
				s.feed([]byte(r), func(l string) { got = append(got, l) })
				if len(s.buf) > max {
					t.Fatalf("pending line grew to %d bytes, max %d", len(s.buf), max)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("lines %q, want %q", got, tc.want)
			}
			if g, o := c.garbage.Load(), c.overlong.Load(); g != tc.garbage || o != tc.overlong {
				t.Errorf("garbage %d overlong %d, want %d %d", g, o, tc.garbage, tc.overlong)
			}
		})
	}
}
