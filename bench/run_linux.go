package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// benchModems is the size of the shared bench: the largest array.
const benchModems = 32

// run measures every section and writes the report. A section that fails
// is reported as such and the others still run; the bench then exits 1.
func run(ctx context.Context, o options, log io.Writer) error {
	h := newHarness(log)
	defer h.close()
	stopped := context.AfterFunc(ctx, func() {
		fmt.Fprintln(log, "interrupted: cleaning up the namespaces")
	})
	defer stopped()
	start := time.Now()
	progress := func(s string) {
		fmt.Fprintf(log, "%6.1fs  %s\n", time.Since(start).Seconds(), s)
	}
	res := &results{Started: start, Machine: describeMachine(), Opts: o, Modems: benchModems,
		DevRTT: 2 * ms(o.wwanDelay), SrvRTT: 2 * ms(o.ethDelay), Sections: map[string][2]pressure{}}
	res.Pressure[0] = readPressure()
	fail := func(section string, err error) {
		res.Errors = append(res.Errors, section+": "+err.Error())
		fmt.Fprintf(log, "%s failed: %v\n", section, err)
	}

	// Footprint first, while nothing else runs on the machine.
	if err := res.measure("footprint", func() error {
		return h.guard(func() error {
			f, err := runFootprint(ctx, h, o, progress)
			res.Foot = f
			return err
		})
	}); err != nil {
		fail("footprint", err)
	}

	if ctx.Err() == nil {
		if err := runNetwork(ctx, h, o, res, progress); err != nil {
			fail("network benchmarks", err)
		}
	}
	res.Took = time.Since(start)
	res.Pressure[1] = readPressure()
	var buf bytes.Buffer
	res.write(&buf)
	if err := os.WriteFile(o.out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	progress("wrote " + o.out)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(res.Errors) > 0 {
		return errors.New("some sections failed; see " + o.out)
	}
	return nil
}

// runNetwork builds the delayed bench and runs sections 1, 2 and 4 on it.
func runNetwork(ctx context.Context, h *harness, o options, res *results, progress func(string)) error {
	progress(fmt.Sprintf("building the bench: %d wwan links and eth0, each through the delay line", benchModems))
	n, err := buildNet(h, benchModems, o.wwanDelay, o.ethDelay)
	if err != nil {
		return err
	}
	t0, c0 := time.Now(), n.line.cpu()
	defer func() {
		res.NetWall, res.DelayCPU = time.Since(t0), n.line.cpu()-c0
		res.Delay = n.line.stop()
	}()
	progress("starting the emulator and the daemon core")
	r, err := newRig(h, n)
	if err != nil {
		return err
	}
	return h.guard(func() error {
		var errs []error
		steps := []struct {
			name string
			run  func() error
		}{
			{"latency", func() (err error) { res.Lat, err = runLatency(ctx, r, o, progress); return err }},
			{"array", func() (err error) { res.Arr, err = runArray(ctx, r, o, progress); return err }},
			{"api", func() (err error) { res.API, err = runAPI(ctx, r, o, progress); return err }},
			{"diagnostics", func() error {
				if res.Arr == nil {
					return nil
				}
				return runArrayDiagnostics(ctx, r, res.Arr, o, progress)
			}},
		}
		for _, st := range steps {
			if ctx.Err() != nil {
				break
			}
			if err := res.measure(st.name, st.run); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", st.name, err))
			}
		}
		return errors.Join(errs...)
	})
}

// measure runs one section, noting the machine's pressure around it.
func (r *results) measure(name string, fn func() error) error {
	p0 := readPressure()
	err := fn()
	r.Sections[name] = [2]pressure{p0, readPressure()}
	return err
}
