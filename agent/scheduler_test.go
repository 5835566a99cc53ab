package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/verify"
)

// gateProvider blocks each check until released and records concurrency.
type gateProvider struct {
	release chan struct{}
	mu      sync.Mutex
	running map[string]int // by interface (one per modem)
	maxPer  int
	maxAll  int
	all     int
}

func (g *gateProvider) Name() string { return "gate" }
func (g *gateProvider) Check(ctx context.Context, req verify.Request) (*verify.Result, error) {
	g.mu.Lock()
	g.running[req.Interface]++
	g.all++
	g.maxPer = max(g.maxPer, g.running[req.Interface])
	g.maxAll = max(g.maxAll, g.all)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.running[req.Interface]--
		g.all--
		g.mu.Unlock()
	}()
	select {
	case <-g.release:
		return &verify.Result{Provider: "gate", Verified: verify.Bool(true)}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type connModem struct{ fakeModem }

func (c *connModem) Connect(context.Context, modem.ConnectParams) (modem.DataInfo, error) {
	return modem.DataInfo{Connected: true, Interface: "if-" + c.Info().ID}, nil
}

type nopPinner struct{}

func (nopPinner) Pin(context.Context, string, modem.DataInfo) (*http.Client, error) {
	return http.DefaultClient, nil
}
func (nopPinner) Unpin(string) {}

func startScheduler(t *testing.T, queue int, p verify.Provider, ids ...string) *http.Client {
	t.Helper()
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	hub := NewHub(16)
	reg := NewRegistry(hub)
	for _, id := range ids {
		reg.Put(&connModem{fakeModem{info: modem.Info{ID: id, IMEI: id, SIM: modem.SIM{ICCID: "8944" + id}}}})
	}
	cfg := config.Default()
	cfg.Checks.Queue = queue
	met := NewMetrics()
	s := NewScheduler(SchedulerOptions{Checks: cfg.Checks, APN: cfg.APNDefault, Metrics: met, Providers: map[string]verify.Provider{"gate": p, "idlayr": p},
		Pinner: nopPinner{}, Journal: j, Registry: reg, Hub: hub})
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	api := &API{Started: time.Now(), Registry: reg, Hub: hub}
	h := api.Handler()
	(&CheckAPI{S: s, Registry: reg}).Register(api)
	api.Handle("GET /metrics", met.Handler(reg, nil))
	path := filepath.Join(dir, "s.sock")
	l, err := ListenUnix(path, 0o600, -1)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { Serve(ctx, l, h, slog.New(slog.DiscardHandler), time.Second); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Wait(); j.Close() })
	return unixClient(path)
}

func post(t *testing.T, c *http.Client, path, body string) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := c.Post("http://simproof"+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	return resp.StatusCode, m, resp.Header
}

func TestCheckRequestValidation(t *testing.T) {
	g := &gateProvider{release: make(chan struct{}), running: map[string]int{}}
	close(g.release)
	c := startScheduler(t, 8, g, "356938035643809", "356938035643817")
	tests := []struct {
		name, body string
		status     int
		code       string
	}{
		{"malformed json", `{"provider":`, 400, "bad_request"},
		{"unknown field", `{"provider":"gate","phone_number":"+447700900123","modem":"356938035643809","colour":1}`, 400, "bad_request"},
		{"wrong type", `{"provider":"gate","phone_number":447700900123}`, 400, "bad_request"},
		{"trailing data", `{"provider":"gate","phone_number":"+447700900123","modem":"356938035643809"} {}`, 400, "bad_request"},
		{"empty body", ``, 400, "bad_request"},
		{"no provider", `{"phone_number":"+447700900123"}`, 400, "bad_request"},
		{"unknown provider", `{"provider":"acme","phone_number":"+447700900123"}`, 400, "unknown_provider"},
		{"letters in number", `{"provider":"gate","phone_number":"+44 77 00 CALL ME"}`, 400, "invalid_phone_number"},
		{"too short", `{"provider":"gate","phone_number":"+12"}`, 400, "invalid_phone_number"},
		{"no modem chosen", `{"provider":"gate","phone_number":"+447700900123"}`, 400, "modem_required"},
		{"unknown modem", `{"provider":"gate","phone_number":"+447700900123","modem":"999999999999999"}`, 404, "modem_not_found"},
		{"unknown iccid", `{"provider":"gate","phone_number":"+447700900123","modem":"iccid:8944000"}`, 404, "modem_not_found"},
		{"http url", `{"url":"http://example.test/x","modem":"356938035643809"}`, 400, "bad_url"},
		{"url and phone", `{"url":"https://example.test/x","phone_number":"+447700900123","modem":"356938035643809"}`, 400, "bad_request"},
		{"bad version", `{"provider":"idlayr","version":"v9","phone_number":"+447700900123","modem":"356938035643809"}`, 400, "bad_request"},
		{"accepted", `{"provider":"gate","phone_number":"+44 7700-900123","modem":"imei:356938035643809"}`, 202, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, m, _ := post(t, c, "/v1/checks", tt.body)
			if st != tt.status && !(tt.status == 202 && st == 200) {
				t.Fatalf("status %d, want %d: %v", st, tt.status, m)
			}
			if tt.code != "" && m["code"] != tt.code {
				t.Errorf("code %v, want %s", m["code"], tt.code)
			}
			if tt.code == "" && m["phone_number"] != "+447700900123" {
				t.Errorf("number not normalised: %v", m["phone_number"])
			}
		})
	}
	resp, err := c.Get("http://simproof/v1/checks/chk_nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("unknown check: %d", resp.StatusCode)
	}
}

func TestQueueBoundAndOnePerModem(t *testing.T) {
	g := &gateProvider{release: make(chan struct{}), running: map[string]int{}}
	c := startScheduler(t, 3, g, "356938035643809", "356938035643817")
	body := func(m string) string {
		return `{"provider":"gate","phone_number":"+447700900123","modem":"` + m + `"}`
	}
	// One runs on each modem, three wait: the queue is full.
	accepted := 0
	for i := 0; i < 5; i++ {
		m := []string{"356938035643809", "356938035643817"}[i%2]
		if st, _, _ := post(t, c, "/v1/checks", body(m)); st == 202 {
			accepted++
		}
		if i < 2 {
			waitRunning(t, g, i+1)
		}
	}
	if accepted != 5 {
		t.Fatalf("accepted %d of 5 (2 running + 3 queued)", accepted)
	}
	st, m, h := post(t, c, "/v1/checks", body("356938035643809"))
	if st != 429 || m["code"] != "queue_full" || h.Get("Retry-After") == "" {
		t.Fatalf("over the queue: %d %v Retry-After %q", st, m, h.Get("Retry-After"))
	}
	// A connect while a check runs is refused, not interleaved.
	if st, m, _ := post(t, c, "/v1/modems/356938035643809/connect", ``); st != 409 || m["code"] != "modem_busy" {
		t.Errorf("connect during a check: %d %v", st, m)
	}
	for i := 0; i < 5; i++ {
		g.release <- struct{}{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxPer != 1 || g.maxAll != 2 {
		t.Errorf("concurrency: %d per modem (want 1), %d overall (want 2)", g.maxPer, g.maxAll)
	}
}

func waitRunning(t *testing.T, g *gateProvider, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		g.mu.Lock()
		all := g.all
		g.mu.Unlock()
		if all >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%d checks never started", n)
}

func TestMetricsAfterChecks(t *testing.T) {
	g := &gateProvider{release: make(chan struct{}), running: map[string]int{}}
	close(g.release)
	c := startScheduler(t, 8, g, "356938035643809")
	for i := 0; i < 3; i++ {
		if st, m, _ := post(t, c, "/v1/checks?wait=10s", `{"provider":"gate","phone_number":"+447700900123","modem":"356938035643809"}`); st != 200 {
			t.Fatalf("check: %d %v", st, m)
		}
	}
	resp, err := c.Get("http://simproof/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(raw)
	for _, want := range []string{
		`simproof_checks_total{provider="gate",outcome="verified"} 3`,
		`simproof_check_duration_seconds_count{provider="gate"} 3`,
		`simproof_check_duration_seconds_bucket{provider="gate",le="+Inf"} 3`,
		`simproof_modems 1`,
		`simproof_modem_connected{modem="356938035643809"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	for _, secret := range []string{"8944356938035643809", "447700900123"} {
		if strings.Contains(text, secret) {
			t.Errorf("metrics hold %q (ICCID or phone number)", secret)
		}
	}
}

// GET /v1/events streams a check's life: check.updated as queued, running
// and completed, redacted like the journal.
func TestCheckEvents(t *testing.T) {
	g := &gateProvider{release: make(chan struct{}), running: map[string]int{}}
	close(g.release)
	c := startScheduler(t, 8, g, "356938035643809")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://simproof/v1/events", nil)
	stream := *c
	stream.Timeout = 0
	resp, err := stream.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if st, m, _ := post(t, c, "/v1/checks?wait=5s", `{"provider":"gate","phone_number":"+447700900123","modem":"356938035643809"}`); st != 200 {
		t.Fatalf("check: %d %v", st, m)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var statuses []string
	event := ""
	for sc.Scan() && (len(statuses) == 0 || statuses[len(statuses)-1] != StatusCompleted) {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok && event == "check.updated" {
			var chk Check
			if err := json.Unmarshal([]byte(v), &chk); err != nil {
				t.Fatalf("event data %q: %v", v, err)
			}
			if len(statuses) == 0 || statuses[len(statuses)-1] != chk.Status {
				statuses = append(statuses, chk.Status)
			}
		}
	}
	if got := strings.Join(statuses, ","); got != "queued,running,completed" {
		t.Errorf("check.updated statuses %s", got)
	}
}

// failingProvider creates a provider check, then fails (a TLS error after
// create, say).
type failingProvider struct{ release chan struct{} }

func (failingProvider) Name() string { return "gate" }
func (f failingProvider) Check(ctx context.Context, req verify.Request) (*verify.Result, error) {
	if err := req.Progress.Report(verify.Event{Provider: "gate", Stage: verify.StageCreated, CheckID: "prov-123"}); err != nil {
		return nil, err
	}
	<-f.release
	return nil, &verify.Error{Code: verify.CodeTLSError, Message: "handshake failed"}
}

// The provider's check id survives a failure after creation, live and in
// the journal; readers polling while the check ends see whole checks (the
// race detector watches).
func TestProviderIDKeptOnFailure(t *testing.T) {
	f := failingProvider{release: make(chan struct{})}
	c := startScheduler(t, 8, f, "356938035643809")
	st, m, _ := post(t, c, "/v1/checks", `{"provider":"gate","phone_number":"+447700900123","modem":"356938035643809"}`)
	if st != 202 {
		t.Fatalf("submit: %d %v", st, m)
	}
	id := m["id"].(string)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // a reader polling while the check ends
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := c.Get("http://simproof/v1/checks/" + id)
			if err == nil {
				var chk Check
				json.NewDecoder(resp.Body).Decode(&chk)
				resp.Body.Close()
				if chk.Status == StatusFailed && chk.Error == nil {
					t.Error("a failed check without its error: a torn read")
				}
			}
		}
	}()
	close(f.release)
	resp, err := c.Get("http://simproof/v1/checks/" + id + "?wait=5s")
	if err != nil {
		t.Fatal(err)
	}
	var chk Check
	json.NewDecoder(resp.Body).Decode(&chk)
	resp.Body.Close()
	close(stop)
	<-done
	if chk.Status != StatusFailed || chk.Error == nil || chk.Error.Code != "tls_error" || chk.ProviderCheck != "prov-123" {
		t.Fatalf("check %s %+v provider %q", chk.Status, chk.Error, chk.ProviderCheck)
	}
}

// A retry with the same idempotency key returns the first check even when
// its request would no longer validate (the modem is gone).
func TestReplayAfterModemGone(t *testing.T) {
	g := &gateProvider{release: make(chan struct{}), running: map[string]int{}}
	close(g.release)
	dir := t.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	hub := NewHub(4)
	reg := NewRegistry(hub)
	reg.Put(&connModem{fakeModem{info: modem.Info{ID: "356938035643809", IMEI: "356938035643809"}}})
	s := NewScheduler(SchedulerOptions{Checks: config.Default().Checks, Providers: map[string]verify.Provider{"gate": g},
		Pinner: nopPinner{}, Journal: j, Registry: reg, Hub: hub})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); s.Wait() }()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	req := CheckRequest{Provider: "gate", PhoneNumber: "+447700900123", Modem: "356938035643809", IdempotencyKey: "order-7"}
	first, _, created, err := s.Submit(req)
	if err != nil || !created {
		t.Fatalf("first: %v %v", created, err)
	}
	reg.Remove("356938035643809")
	again, _, created, err := s.Submit(req)
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("replay after the modem left: %+v created=%v err=%v", again, created, err)
	}
	// Without the key the same request is refused, as it should be.
	req.IdempotencyKey = ""
	if _, _, _, err := s.Submit(req); err == nil {
		t.Fatal("a new check on a gone modem was accepted")
	}
}

// A device-only check names a provider the daemon knows, or none.
func TestDeviceOnlyProviderBounded(t *testing.T) {
	g := &gateProvider{release: make(chan struct{}), running: map[string]int{}}
	close(g.release)
	c := startScheduler(t, 8, g, "356938035643809")
	for body, want := range map[string]int{
		`{"url":"https://example.test/x","provider":"` + strings.Repeat("p", 300) + `","modem":"356938035643809"}`: 400,
		`{"url":"https://example.test/x","max_hops":1000,"modem":"356938035643809"}`:                               400,
	} {
		if st, m, _ := post(t, c, "/v1/checks", body); st != want {
			t.Errorf("%.60s…: %d %v", body, st, m)
		}
	}
}

// Sixteen concurrent submissions with one idempotency key make one check;
// every one of them gets it, and the queue count is not left inflated.
func TestConcurrentIdempotentSubmits(t *testing.T) {
	g := &gateProvider{release: make(chan struct{}), running: map[string]int{}}
	j, err := OpenJournal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	hub := NewHub(4)
	reg := NewRegistry(hub)
	reg.Put(&connModem{fakeModem{info: modem.Info{ID: "356938035643809", IMEI: "356938035643809"}}})
	checks := config.Default().Checks
	checks.Queue = 4
	s := NewScheduler(SchedulerOptions{Checks: checks, Providers: map[string]verify.Provider{"gate": g},
		Pinner: nopPinner{}, Journal: j, Registry: reg, Hub: hub})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); s.Wait() }()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	req := CheckRequest{Provider: "gate", PhoneNumber: "+447700900123", Modem: "356938035643809", IdempotencyKey: "same"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids, created := map[string]int{}, 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, isNew, err := s.Submit(req)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids[c.ID]++
			if isNew {
				created++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(ids) != 1 || created != 1 {
		t.Fatalf("ids %v, created %d: want one check", ids, created)
	}
	close(g.release)
	var id string
	for k := range ids {
		id = k
	}
	_, l, err := s.Get(id)
	if err != nil || l == nil {
		t.Fatalf("live check: %v", err)
	}
	select {
	case <-l.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the check never finished")
	}
	// Fifteen replays reserved and released a queue place each: the count
	// is back to nothing waiting.
	s.mu.Lock()
	queued := s.queued
	s.mu.Unlock()
	if queued != 0 {
		t.Errorf("queue count %d after every check left the queue", queued)
	}
}
