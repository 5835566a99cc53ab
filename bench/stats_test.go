package main

import (
	"math"
	"testing"
)

func TestQuantile(t *testing.T) {
	tests := []struct {
		v    []float64
		q    float64
		want float64
	}{
		{[]float64{5}, 0.9, 5},
		{[]float64{1, 2, 3, 4}, 0, 1},
		{[]float64{1, 2, 3, 4}, 1, 4},
		{[]float64{1, 2, 3, 4}, 0.5, 2.5},
		{[]float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110}, 0.9, 100},
		{[]float64{0, 10}, 0.25, 2.5},
	}
	for _, tc := range tests {
		if got := quantile(tc.v, tc.q); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.v, tc.q, got, tc.want)
		}
	}
	if !math.IsNaN(quantile(nil, 0.5)) {
		t.Error("quantile of nothing is not NaN")
	}
}

func TestSummarize(t *testing.T) {
	s := summarize([]float64{9, 1, 5, 3, 7})
	if s.N != 5 || s.Min != 1 || s.Max != 9 || s.Median != 5 {
		t.Errorf("summary %+v", s)
	}
	if got := s.msSpread(); got != "5.00 ms (p10 1.80 ms, p90 8.20 ms)" {
		t.Errorf("msSpread = %q", got)
	}
	if got := summarize([]float64{120, 80}).msSpread(); got != "100 ms (min 80.0 ms, max 120 ms)" {
		t.Errorf("few samples: %q", got)
	}
	if got := summarize(nil).msSpread(); got != "–" {
		t.Errorf("no samples: %q", got)
	}
}
