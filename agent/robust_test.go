package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/verify"
)

func TestOneMiBBodyRefused(t *testing.T) {
	c, _, _ := startAPI(t)
	for _, chunked := range []bool{false, true} {
		var body io.Reader = bytes.NewReader(make([]byte, 1<<20))
		if chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
		req, _ := http.NewRequest("POST", "http://simproof/v1/checks", body)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// With a length the cap answers before routing; chunked, this
		// route does not read the body (the checks API's decoder caps it:
		// TestOneMiBCheckBodyRefused).
		if !chunked && (resp.StatusCode != 413 || !strings.Contains(string(raw), "body_too_large")) {
			t.Errorf("1 MiB body: %d %s", resp.StatusCode, raw)
		}
	}
}

func TestOneMiBCheckBodyRefused(t *testing.T) {
	g := &gateProvider{release: make(chan struct{}), running: map[string]int{}}
	close(g.release)
	c := startScheduler(t, 8, g, "356938035643809")
	big := `{"provider":"gate","phone_number":"+447700900123","idempotency_key":"` + strings.Repeat("k", 1<<20) + `"}`
	// Chunked, so only the decoder's cap can stop it.
	req, _ := http.NewRequest("POST", "http://simproof/v1/checks", io.MultiReader(strings.NewReader(big)))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(raw), "body_too_large") {
		t.Errorf("1 MiB chunked check body: %d %s", resp.StatusCode, raw)
	}
}

// A client that never finishes its headers is dropped once the header
// timeout passes.
func TestSlowHeadersDropped(t *testing.T) {
	old := readHeaderTimeout
	readHeaderTimeout = 200 * time.Millisecond
	// Restored after the server (a cleanup of startAPI, run first) is gone.
	t.Cleanup(func() { readHeaderTimeout = old })
	_, path, _ := startAPI(t)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /v1/health HTTP/1.1\r\nHost: simproof\r\nX-Slow: ")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(conn) // ends when the server closes the connection
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a client with unfinished headers for 10 s")
	}
}

// 500 clients at once are all answered (the accept backlog and the server
// hold them), none gets a broken answer.
func TestManyConcurrentConnections(t *testing.T) {
	_, path, _ := startAPI(t, testModem("356938035643809"))
	const n = 500
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := "ok"
			conn, err := net.DialTimeout("unix", path, 10*time.Second)
			if err != nil {
				res = "refused" // a clean refusal is acceptable
			} else {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				fmt.Fprint(conn, "GET /v1/modems HTTP/1.1\r\nHost: simproof\r\nConnection: close\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				switch {
				case err != nil:
					res = "broken: " + err.Error()
				case resp.StatusCode != 200:
					res = fmt.Sprint("status ", resp.StatusCode)
				default:
					body, err := io.ReadAll(resp.Body)
					if err != nil || !bytes.Contains(body, []byte("356938035643809")) {
						res = "bad body"
					}
				}
			}
			mu.Lock()
			codes[res]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes["ok"]+codes["refused"] != n {
		t.Errorf("answers: %v", codes)
	}
	if codes["ok"] == 0 {
		t.Errorf("nobody was served: %v", codes)
	}
}

// FuzzCheckRequest feeds arbitrary bodies to POST /v1/checks: the API must
// answer every one with a 2xx or 4xx, never a 5xx or a panic.
func FuzzCheckRequest(f *testing.F) {
	for _, s := range []string{
		`{"provider":"gate","phone_number":"+447700900123","modem":"356938035643809"}`,
		`{"provider":"idlayr","version":"v0.2","phone_number":"+44 7700-900123","idempotency_key":"k"}`,
		`{"url":"https://example.test/x?code=1","stop_at":"https://cb.test/","modem":"imei:356938035643809"}`,
		`{"provider":"plasgate","scope":"mobile_id","modem":"iccid:8944356938035643809"}`,
		`{"provider":`, `[]`, `null`, `{"max_hops":-1}`, "{\"phone_number\":\"\u0000\"}",
	} {
		f.Add([]byte(s))
	}
	g := &gateProvider{release: make(chan struct{}), running: map[string]int{}}
	close(g.release)
	h := fuzzHandler(f, g)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/v1/checks", bytes.NewReader(body))
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("body %q: %d %s", body, rec.Code, rec.Body)
		}
	})
}

func fuzzHandler(f *testing.F, g *gateProvider) http.Handler {
	dir := f.TempDir()
	j, err := OpenJournal(dir)
	if err != nil {
		f.Fatal(err)
	}
	j.db.NoSync = true // thousands of inputs; durability is not under test here
	hub := NewHub(4)
	reg := NewRegistry(hub)
	reg.Put(&connModem{fakeModem{info: testModem("356938035643809").info}})
	checks := config.Default().Checks
	checks.Queue = 1 << 20
	s := NewScheduler(SchedulerOptions{Checks: checks, Providers: map[string]verify.Provider{"gate": g, "idlayr": g, "plasgate": g},
		Pinner: nopPinner{}, Journal: j, Registry: reg, Hub: hub})
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { cancel(); s.Wait(); j.Close() })
	api := &API{Started: time.Now(), Registry: reg, Hub: hub}
	h := api.Handler()
	(&CheckAPI{S: s, Registry: reg}).Register(api)
	return h
}
