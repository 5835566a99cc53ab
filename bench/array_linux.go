package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/simproof/simproof/agent"
	"github.com/simproof/simproof/verify/emulator"
)

// stages splits an IDlayr check as the events stream shows it.
type stages struct {
	Accept time.Duration // request sent → "queued" (validated, journaled)
	Start  time.Duration // queued → running
	Create time.Duration // running → created: bearer check, pin, token?, create call, journal
	Device time.Duration // created → result: the device step
	Finish time.Duration // result → the answer: poll, journal, response
}

var stageNames = []string{"accepted (POST → queued)", "started (→ running)", "created (bearer, pin, create call)",
	"device step (→ result stage)", "finished (poll, journal, answer)"}

func (s stages) list() []time.Duration {
	return []time.Duration{s.Accept, s.Start, s.Create, s.Device, s.Finish}
}

func (r *rig) stagesOf(id string, sent time.Time, total time.Duration) (stages, bool) {
	tl := r.events
	tl.mu.Lock()
	defer tl.mu.Unlock()
	at := map[string]time.Time{}
	for _, s := range tl.checks[id] {
		k := s.Status + "/" + s.Stage
		if _, ok := at[k]; !ok {
			at[k] = s.At
		}
	}
	q, ok1 := at["queued/"]
	run, ok2 := at["running/"]
	cr, ok3 := at["running/created"]
	res, ok4 := at["running/result"]
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return stages{}, false
	}
	return stages{Accept: q.Sub(sent), Start: run.Sub(q), Create: cr.Sub(run), Device: res.Sub(cr),
		Finish: sent.Add(total).Sub(res)}, true
}

// arrayRound is N checks started at once, one per modem.
type arrayRound struct {
	N      int
	Wall   time.Duration // released → last answer received
	Checks []time.Duration
	Stages []stages

	Failed      int // checks that did not end verified
	WrongHops   int // device hops on another modem's interface or address
	OpRequests  int // operator requests seen
	OpWrongSrc  int // operator requests from an address not of this round's SIMs
	OpPerSIMBad int // SIM addresses whose operator request count is not one check's worth

	DelayCPU, BenchCPU time.Duration
	SrvDials           int64 // server-side connections opened during the round
}

func (a arrayRound) Leaks() int { return a.Failed + a.WrongHops + a.OpWrongSrc + a.OpPerSIMBad }

// arrayVariant is a set of 32-modem rounds under a diagnostic change.
type arrayVariant struct {
	Name   string
	Rounds []arrayRound
	Single []float64 // ms
}

type arrayResult struct {
	Warmup       time.Duration // the first round over all modems (bearers come up)
	Rounds       map[int][]arrayRound
	Sizes        []int
	Singles      []float64 // ms: one warm check alone before every round
	SingleStages []stages
	Variants     []arrayVariant
}

// Single is T_single: the median of the single checks of the section.
func (a *arrayResult) Single() float64 { return summarize(a.Singles).Median }

// Efficiency of a round is T_single ÷ T_wall.
func (a *arrayResult) Efficiency(r arrayRound) float64 { return a.Single() / ms(r.Wall) }

func runArray(ctx context.Context, r *rig, o options, progress func(string)) (*arrayResult, error) {
	res := &arrayResult{Rounds: map[int][]arrayRound{}}
	for _, n := range []int{8, 16, 32} {
		if n <= len(r.ids) {
			res.Sizes = append(res.Sizes, n)
		}
	}
	if len(res.Sizes) == 0 {
		return res, nil
	}
	// Bring every bearer up once (connect, netbind, neighbour caches), so
	// the rounds compare warm checks with a warm single check.
	progress(fmt.Sprintf("array warm-up: %d checks at once", len(r.ids)))
	w, err := r.round(ctx, len(r.ids))
	if err != nil {
		return nil, err
	}
	res.Warmup = w.Wall
	for _, n := range res.Sizes {
		for k := range o.arrayReps {
			progress(fmt.Sprintf("array: %d modems, round %d/%d", n, k+1, o.arrayReps))
			// The single check rotates over the round's modems.
			single, st, err := r.single(ctx, k%n)
			if err != nil {
				return nil, err
			}
			res.Singles = append(res.Singles, ms(single))
			res.SingleStages = append(res.SingleStages, st)
			a, err := r.round(ctx, n)
			if err != nil {
				return nil, err
			}
			res.Rounds[n] = append(res.Rounds[n], a)
		}
	}
	return res, nil
}

// runArrayDiagnostics repeats the 32-modem rounds with the journal on tmpfs,
// where a commit costs no fsync (a block of its own after a daemon restart),
// beside the journal on disk, to show what the journal's fsyncs still cost
// with group commit. tmpfs is not simproofd's configuration: it is set from
// the bench. It runs last.
func runArrayDiagnostics(ctx context.Context, r *rig, res *arrayResult, o options, progress func(string)) error {
	n := len(r.ids)
	built, err := r.newProviders(0)
	if err != nil {
		return err
	}
	// simproofd's server-side client now keeps 64 idle connections per host
	// (it kept Go's default of 2 when this diagnostic first showed what
	// that cost), so only the journal's cost is left to show.
	sets := []struct {
		name string
		ps   providerSet
	}{{"simproofd's server-side client (verify.NewServerClient)", built}}
	block := func(journal string) error {
		vs := make([]arrayVariant, len(sets))
		for j, s := range sets {
			vs[j].Name = "journal " + journal + "; " + s.name
			r.use(s.ps)
			if _, err := r.round(ctx, n); err != nil { // token and connections warm
				return err
			}
		}
		for k := range o.arrayReps {
			progress(fmt.Sprintf("array diagnostic, journal %s: round %d/%d", journal, k+1, o.arrayReps))
			for j, s := range sets {
				r.use(s.ps)
				single, _, err := r.single(ctx, k%n)
				if err != nil {
					return err
				}
				vs[j].Single = append(vs[j].Single, ms(single))
				a, err := r.round(ctx, n)
				if err != nil {
					return err
				}
				vs[j].Rounds = append(vs[j].Rounds, a)
			}
		}
		res.Variants = append(res.Variants, vs...)
		return nil
	}
	if err := block("on disk (as built)"); err != nil {
		return err
	}
	if st, err := os.Stat("/dev/shm"); err != nil || !st.IsDir() {
		return nil
	}
	dir, err := os.MkdirTemp("/dev/shm", "simproof-bench-")
	if err != nil {
		return nil
	}
	r.h.Cleanup(func() { os.RemoveAll(dir) })
	progress("array diagnostic: restarting the daemon with its journal on tmpfs")
	if err := r.restart(filepath.Join(dir, "state")); err != nil {
		return err
	}
	r.use(built)
	if _, err := r.round(ctx, n); err != nil { // bearers up again after the restart
		return err
	}
	return block("on tmpfs")
}

// single runs one warm check alone and splits it into stages.
func (r *rig) single(ctx context.Context, i int) (time.Duration, stages, error) {
	sent := time.Now()
	c, el, err := r.check(ctx, "idlayr", i)
	if err != nil {
		return 0, stages{}, err
	}
	st, _ := r.stagesOf(c.ID, sent, el)
	return el, st, nil
}

// round starts an IDlayr check on each of modems 0..n-1 at once and checks
// the operator's view: every operator request from one of these SIMs'
// addresses, each SIM's as many as one check needs, and every check
// verified (the operator matched the number to the address it saw).
func (r *rig) round(ctx context.Context, n int) (arrayRound, error) {
	a := arrayRound{N: n, Checks: make([]time.Duration, n)}
	r.emu.ResetObservations()
	checks := make([]*agent.Check, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	d0, b0, s0 := r.net.line.cpu(), selfCPU(), r.serverDials.Load()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			checks[i], a.Checks[i], errs[i] = r.check(ctx, "idlayr", i)
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	a.Wall = time.Since(t0)
	a.DelayCPU, a.BenchCPU, a.SrvDials = r.net.line.cpu()-d0, selfCPU()-b0, r.serverDials.Load()-s0

	addrs := map[string]int{}
	for i := range n {
		addrs[r.net.tp.Modems[i].Addr4.Addr().String()] = i
	}
	for i, c := range checks {
		if errs[i] != nil {
			a.Failed++
			if c == nil {
				return a, errs[i] // the API itself failed: not a measurement
			}
			continue
		}
		if st, ok := r.stagesOf(c.ID, t0, a.Checks[i]); ok {
			a.Stages = append(a.Stages, st)
		}
		want := r.net.tp.Modems[i]
		for _, h := range c.Trace {
			if h.Interface != want.Interface || !strings.HasPrefix(h.LocalAddress, want.Addr4.Addr().String()+":") {
				a.WrongHops++
			}
		}
	}
	perSIM := map[string]int{}
	for _, q := range r.emu.Requests() {
		if q.Role != emulator.RoleOperator {
			continue
		}
		a.OpRequests++
		if _, ok := addrs[q.Source.String()]; !ok {
			a.OpWrongSrc++
			continue
		}
		perSIM[q.Source.String()]++
	}
	// One IDlayr chain is two operator requests (start, hop2).
	for addr := range addrs {
		if perSIM[addr] != 2 {
			a.OpPerSIMBad++
		}
	}
	return a, nil
}

// selfCPU is this process's CPU time: the daemon core, the emulator, the
// simulated modems and the API clients all run in it.
func selfCPU() time.Duration {
	c, err := procCPU(os.Getpid())
	if err != nil {
		return 0
	}
	return c
}
