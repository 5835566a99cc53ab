package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

// harness lets the bench use internal/nstest, whose helpers take a
// testing.TB, from an ordinary program: Fatal panics with a harnessFatal
// that run recovers, Cleanup functions run (last first) when the bench ends
// however it ends, and Errorf is remembered and reported.
//
// The embedded testing.TB is nil and only satisfies the interface's
// unexported method; every method nstest calls is defined here.
type harness struct {
	testing.TB

	log io.Writer

	mu       sync.Mutex
	cleanups []func()
	errs     []string
	tmp      []string
}

type harnessFatal struct{ msg string }

func newHarness(log io.Writer) *harness { return &harness{log: log} }

func (h *harness) Helper()      {}
func (h *harness) Name() string { return "bench" }

func (h *harness) Cleanup(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups = append(h.cleanups, f)
}

func (h *harness) Log(args ...any)                 { fmt.Fprintln(h.log, args...) }
func (h *harness) Logf(format string, args ...any) { fmt.Fprintf(h.log, format+"\n", args...) }

func (h *harness) Error(args ...any) { h.Errorf("%s", fmt.Sprint(args...)) }
func (h *harness) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.mu.Lock()
	h.errs = append(h.errs, msg)
	h.mu.Unlock()
	fmt.Fprintln(h.log, "error:", msg)
}
func (h *harness) Fail() { h.Errorf("failed") }
func (h *harness) Failed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.errs) > 0
}

func (h *harness) Fatal(args ...any) { panic(harnessFatal{fmt.Sprint(args...)}) }
func (h *harness) Fatalf(format string, args ...any) {
	panic(harnessFatal{fmt.Sprintf(format, args...)})
}
func (h *harness) FailNow()         { panic(harnessFatal{"FailNow"}) }
func (h *harness) Skip(args ...any) { panic(harnessFatal{"cannot run: " + fmt.Sprint(args...)}) }
func (h *harness) Skipf(format string, args ...any) {
	panic(harnessFatal{"cannot run: " + fmt.Sprintf(format, args...)})
}
func (h *harness) SkipNow()      { panic(harnessFatal{"cannot run"}) }
func (h *harness) Skipped() bool { return false }

func (h *harness) TempDir() string {
	d, err := os.MkdirTemp("", "simproof-bench-")
	if err != nil {
		h.Fatalf("temp dir: %v", err)
	}
	h.mu.Lock()
	h.tmp = append(h.tmp, d)
	h.mu.Unlock()
	return d
}

func (h *harness) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	os.Setenv(key, value)
	h.Cleanup(func() {
		if had {
			os.Setenv(key, old)
		} else {
			os.Unsetenv(key)
		}
	})
}

func (h *harness) Context() context.Context { return context.Background() }

// close runs the cleanups, last registered first, then removes temp dirs.
func (h *harness) close() {
	for {
		h.mu.Lock()
		n := len(h.cleanups)
		if n == 0 {
			h.mu.Unlock()
			break
		}
		f := h.cleanups[n-1]
		h.cleanups = h.cleanups[:n-1]
		h.mu.Unlock()
		func() {
			defer func() {
				if r := recover(); r != nil {
					fmt.Fprintln(h.log, "cleanup:", r)
				}
			}()
			f()
		}()
	}
	h.mu.Lock()
	tmp := h.tmp
	h.tmp = nil
	h.mu.Unlock()
	for _, d := range tmp {
		os.RemoveAll(d)
	}
}

// guard runs fn and turns a harness Fatal into an error.
func (h *harness) guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if f, ok := r.(harnessFatal); ok {
				err = fmt.Errorf("%s", f.msg)
				return
			}
			panic(r)
		}
	}()
	return fn()
}
