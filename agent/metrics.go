package agent

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/simproof/simproof/modem/at"
)

// Metrics is the daemon's Prometheus surface.
//
// Library: github.com/VictoriaMetrics/metrics for counters. Measured on
// linux/arm (GOARMv7, stripped, static) over a bare net/http program it
// adds 0.39 MB, where prometheus/client_golang adds 2.82 MB — a quarter of
// a small router's flash partition for the same text format. Its own
// histograms use "vmrange" buckets that Prometheus's histogram_quantile
// cannot read, so the one histogram here is a classic fixed-bucket one
// written beside the library's output.
//
// No label holds a phone number, an IMSI or an ICCID: modems are labelled
// by id (the IMEI), checks by provider and outcome only.
type Metrics struct {
	set *metrics.Set

	mu   sync.Mutex
	hist map[string]*histogram // check duration by provider
}

// checkBuckets are the duration buckets, in seconds: a check over a good
// bearer takes well under a second, a slow operator tens of seconds, and
// the TTL caps it at minutes.
var checkBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	n      uint64
}

// NewMetrics returns an empty set.
func NewMetrics() *Metrics {
	return &Metrics{set: metrics.NewSet(), hist: map[string]*histogram{}}
}

// CheckFinished counts a final check by provider and outcome and records
// its duration.
func (m *Metrics) CheckFinished(c *Check) {
	if m == nil {
		return
	}
	m.set.GetOrCreateCounter(fmt.Sprintf(`simproof_checks_total{provider=%s,outcome=%s}`,
		quoteLabel(c.Provider), quoteLabel(outcome(c)))).Inc()
	if c.StartedAt == nil || c.FinishedAt == nil {
		return
	}
	secs := c.FinishedAt.Sub(*c.StartedAt).Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hist[c.Provider]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(checkBuckets)+1)}
		m.hist[c.Provider] = h
	}
	i := sort.SearchFloat64s(checkBuckets, secs)
	h.counts[i]++
	h.sum += secs
	h.n++
}

// outcome is verified, not_verified, completed (device-only or a scope that
// does not decide), or the catalogue code that stopped the check.
func outcome(c *Check) string {
	switch {
	case c.Status == StatusCompleted && c.Result != nil && c.Result.Result != nil && c.Result.Verified != nil:
		if *c.Result.Verified {
			return "verified"
		}
		return "not_verified"
	case c.Status == StatusCompleted:
		return "completed"
	case c.Error != nil:
		return c.Error.Code
	}
	return c.Status
}

// quoteLabel writes a label value as the text format wants it.
func quoteLabel(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}

// Handler serves the text exposition: check counters and durations,
// per-modem gauges read from the registry at scrape time, backend counters.
func (m *Metrics) Handler(reg *Registry, backends map[string]RunningBackend) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m.set.WritePrometheus(w)
		m.writeHistograms(w)
		writeModems(w, reg)
		writeBackends(w, backends)
	}
}

func (m *Metrics) writeHistograms(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	providers := make([]string, 0, len(m.hist))
	for p := range m.hist {
		providers = append(providers, p)
	}
	sort.Strings(providers)
	if len(providers) > 0 {
		fmt.Fprintln(w, "# HELP simproof_check_duration_seconds Time from a check's start to its verdict.")
		fmt.Fprintln(w, "# TYPE simproof_check_duration_seconds histogram")
	}
	for _, p := range providers {
		h := m.hist[p]
		var cum uint64
		for i, le := range checkBuckets {
			cum += h.counts[i]
			fmt.Fprintf(w, "simproof_check_duration_seconds_bucket{provider=%s,le=\"%g\"} %d\n", quoteLabel(p), le, cum)
		}
		cum += h.counts[len(checkBuckets)]
		fmt.Fprintf(w, "simproof_check_duration_seconds_bucket{provider=%s,le=\"+Inf\"} %d\n", quoteLabel(p), cum)
		fmt.Fprintf(w, "simproof_check_duration_seconds_sum{provider=%s} %g\n", quoteLabel(p), h.sum)
		fmt.Fprintf(w, "simproof_check_duration_seconds_count{provider=%s} %d\n", quoteLabel(p), h.n)
	}
}

func writeModems(w io.Writer, reg *Registry) {
	ms := reg.List()
	fmt.Fprintf(w, "# HELP simproof_modems Modems known now.\n# TYPE simproof_modems gauge\nsimproof_modems %d\n", len(ms))
	if len(ms) == 0 {
		return
	}
	gauge := func(name, help string, val func(i int) (float64, bool)) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		for i, m := range ms {
			if v, ok := val(i); ok {
				fmt.Fprintf(w, "%s{modem=%s} %g\n", name, quoteLabel(m.ID), v)
			}
		}
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge("simproof_modem_signal_quality", "Signal quality, 0 to 100.", func(i int) (float64, bool) {
		if q := ms[i].SignalQuality; q != nil {
			return float64(*q), true
		}
		return 0, false
	})
	gauge("simproof_modem_registered", "1 when registered (home or roaming) with the network.", func(i int) (float64, bool) {
		r := ms[i].Registration
		return b2f(r == "home" || r == "roaming" || strings.HasSuffix(r, "sms-only") || strings.HasSuffix(r, "csfb-not-preferred")), true
	})
	gauge("simproof_modem_connected", "1 when the data session is up.", func(i int) (float64, bool) {
		return b2f(ms[i].Data.Connected), true
	})
	gauge("simproof_modem_busy", "1 while a check runs on the modem.", func(i int) (float64, bool) {
		return b2f(ms[i].Busy), true
	})
}

func writeBackends(w io.Writer, backends map[string]RunningBackend) {
	names := make([]string, 0, len(backends))
	for n := range backends {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		switch b := backends[n].(type) {
		case interface{ PortStats() []at.PortStats }:
			stats := b.PortStats()
			counter := func(name, help string, val func(at.PortStats) uint64) {
				fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
				for _, s := range stats {
					fmt.Fprintf(w, "%s{port=%s} %d\n", name, quoteLabel(s.Device), val(s))
				}
			}
			counter("simproof_at_commands_total", "AT commands sent.", func(s at.PortStats) uint64 { return s.Commands })
			counter("simproof_at_command_errors_total", "AT commands answered with an error.", func(s at.PortStats) uint64 { return s.Errors })
			counter("simproof_at_command_timeouts_total", "AT commands with no final result code in time.", func(s at.PortStats) uint64 { return s.Timeouts })
			counter("simproof_at_garbage_bytes_total", "Line noise skipped on AT ports.", func(s at.PortStats) uint64 { return s.GarbageBytes })
			counter("simproof_at_port_opens_total", "Successful opens of AT ports (reopens after an unplug included).", func(s at.PortStats) uint64 { return s.Opens })
		case interface{ Resyncs() uint64 }:
			fmt.Fprintf(w, "# HELP simproof_modemmanager_resyncs_total Full resyncs with ModemManager (start, restarts, bus reconnects).\n")
			fmt.Fprintf(w, "# TYPE simproof_modemmanager_resyncs_total counter\nsimproof_modemmanager_resyncs_total %d\n", b.Resyncs())
		}
	}
}
