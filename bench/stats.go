package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// quantile of sorted values by linear interpolation between closest ranks
// (q in [0,1]); NaN for no values.
func quantile(sorted []float64, q float64) float64 {
	switch len(sorted) {
	case 0:
		return math.NaN()
	case 1:
		return sorted[0]
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (pos-float64(lo))*(sorted[hi]-sorted[lo])
}

// Summary is the spread of one series of measurements.
type Summary struct {
	N                     int
	Min, P10, Median, P90 float64
	P99, Max              float64
}

func summarize(v []float64) Summary {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		nan := math.NaN()
		return Summary{Min: nan, P10: nan, Median: nan, P90: nan, P99: nan, Max: nan}
	}
	return Summary{N: len(s), Min: s[0], P10: quantile(s, 0.10), Median: quantile(s, 0.5),
		P90: quantile(s, 0.90), P99: quantile(s, 0.99), Max: s[len(s)-1]}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// msSpread formats a summary of milliseconds as "median (p10–p90)".
func (s Summary) msSpread() string {
	if s.N == 0 {
		return "–"
	}
	if s.N < 5 {
		return fmt.Sprintf("%s (min %s, max %s)", fmtMS(s.Median), fmtMS(s.Min), fmtMS(s.Max))
	}
	return fmt.Sprintf("%s (p10 %s, p90 %s)", fmtMS(s.Median), fmtMS(s.P10), fmtMS(s.P90))
}

func fmtMS(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}
