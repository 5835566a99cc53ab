package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// apiLoad is GET /v1/modems from many clients at once.
type apiLoad struct {
	Clients   int
	Duration  time.Duration
	Requests  int
	Errors    int
	Latency   Summary // ms
	Checks    []float64
	CheckErrs int
	CheckMods int
	BenchCPU  time.Duration
	BodyBytes int64 // one answer's size
}

func (a apiLoad) RPS() float64 { return float64(a.Requests) / a.Duration.Seconds() }

type apiResult struct {
	Idle, Busy apiLoad
}

// runAPI measures the socket API alone, then while checks run back to back
// on checkModems modems.
func runAPI(ctx context.Context, r *rig, o options, progress func(string)) (*apiResult, error) {
	res := &apiResult{}
	progress(fmt.Sprintf("socket API: %d clients, no checks, %s", o.apiClients, o.apiFor/2))
	idle, err := r.loadAPI(ctx, o.apiClients, o.apiFor/2, 0)
	if err != nil {
		return nil, err
	}
	res.Idle = idle
	n := min(8, len(r.ids))
	progress(fmt.Sprintf("socket API: %d clients while checks run on %d modems, %s", o.apiClients, n, o.apiFor))
	busy, err := r.loadAPI(ctx, o.apiClients, o.apiFor, n)
	if err != nil {
		return nil, err
	}
	res.Busy = busy
	return res, nil
}

func (r *rig) loadAPI(ctx context.Context, clients int, d time.Duration, checkModems int) (apiLoad, error) {
	res := apiLoad{Clients: clients, Duration: d, CheckMods: checkModems}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lat []float64
	var bodyBytes atomic.Int64
	// Check workers: IDlayr checks back to back, one worker per modem.
	var cwg sync.WaitGroup
	for i := range checkModems {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for !stop.Load() {
				_, el, err := r.check(ctx, "idlayr", i)
				mu.Lock()
				if err != nil {
					if ctx.Err() == nil {
						res.CheckErrs++
					}
				} else {
					res.Checks = append(res.Checks, ms(el))
				}
				mu.Unlock()
			}
		}()
	}
	if checkModems > 0 {
		time.Sleep(500 * time.Millisecond) // the checks are under way
	}
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, DialContext: r.api.Transport.(*http.Transport).DialContext}
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	b0 := selfCPU()
	t0 := time.Now()
	deadline := t0.Add(d)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			errs := 0
			for time.Now().Before(deadline) {
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://simproof/v1/modems", nil)
				s := time.Now()
				resp, err := cl.Do(req)
				if err == nil {
					var n int64
					n, err = io.Copy(io.Discard, resp.Body)
					bodyBytes.Store(n)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("HTTP %d", resp.StatusCode)
					}
				}
				if err != nil {
					errs++
					continue
				}
				mine = append(mine, ms(time.Since(s)))
			}
			mu.Lock()
			lat = append(lat, mine...)
			res.Errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Duration = time.Since(t0)
	res.BenchCPU = selfCPU() - b0
	stop.Store(true)
	cwg.Wait()
	res.Requests = len(lat)
	res.BodyBytes = bodyBytes.Load()
	res.Latency = summarize(lat)
	return res, nil
}
