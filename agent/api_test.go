package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simproof/simproof/modem"
)

// fakeModem is a modem whose Info a test sets.
type fakeModem struct {
	mu   sync.Mutex
	info modem.Info
}

func (f *fakeModem) Info() modem.Info { f.mu.Lock(); defer f.mu.Unlock(); return f.info }
func (f *fakeModem) Connect(context.Context, modem.ConnectParams) (modem.DataInfo, error) {
	return modem.DataInfo{}, modem.ErrNoBearer
}
func (f *fakeModem) Disconnect(context.Context) error { return nil }

// startAPI serves the API on a real Unix socket in a temp dir and returns a
// client for it.
func startAPI(t *testing.T, mods ...*fakeModem) (*http.Client, string, *Registry) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "run", "simproof.sock")
	l, err := ListenUnix(path, 0o660, -1)
	if err != nil {
		t.Fatal(err)
	}
	hub := NewHub(16)
	reg := NewRegistry(hub)
	for _, m := range mods {
		reg.Put(m)
	}
	api := &API{Version: "test", Started: time.Now(), Registry: reg, Hub: hub}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, api.Handler(), slog.New(slog.DiscardHandler), time.Second) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("server did not shut down")
		}
	})
	return unixClient(path), path, reg
}

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
}

func testModem(id string) *fakeModem {
	q := 61
	return &fakeModem{info: modem.Info{ID: id, Backend: "at", IMEI: id, State: "registered",
		SIM: modem.SIM{ICCID: "8944000000000000" + id[len(id)-3:], IMSI: "001010000000001"}, SignalQuality: &q}}
}

func TestAPI(t *testing.T) {
	c, _, _ := startAPI(t, testModem("356938035643809"), testModem("356938035643817"))
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string // problem code, "" for success
		contains                 string
	}{
		{"health", "GET", "/v1/health", "", 200, "", `"status": "ok"`},
		{"list", "GET", "/v1/modems", "", 200, "", `"356938035643817"`},
		{"one", "GET", "/v1/modems/356938035643809", "", 200, "", `"imei": "356938035643809"`},
		{"by imei", "GET", "/v1/modems/imei:356938035643817", "", 200, "", `"id": "356938035643817"`},
		{"by iccid", "GET", "/v1/modems/iccid:8944000000000000809", "", 200, "", `"id": "356938035643809"`},
		{"unknown modem", "GET", "/v1/modems/123456789012345", "", 404, "modem_not_found", ""},
		{"malformed id", "GET", "/v1/modems/%3Cscript%3E", "", 400, "bad_request", ""},
		{"unknown path", "GET", "/v2/modems", "", 404, "not_found", ""},
		{"nested unknown", "GET", "/v1/modems/a/b/c", "", 404, "not_found", ""},
		{"method", "DELETE", "/v1/modems", "", 405, "method_not_allowed", ""},
		{"oversized body", "POST", "/v1/modems", strings.Repeat("x", MaxBody+1), 413, "body_too_large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "http://simproof"+tt.path, strings.NewReader(tt.body))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.code != "" {
				if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("content type %q", ct)
				}
				var p Problem
				if err := json.Unmarshal(body, &p); err != nil {
					t.Fatalf("not JSON: %s", body)
				}
				if p.Code != tt.code || p.Status != tt.status || p.Title == "" {
					t.Errorf("problem %+v, want code %s", p, tt.code)
				}
			}
			if !strings.Contains(string(body), tt.contains) {
				t.Errorf("body %s lacks %s", body, tt.contains)
			}
		})
	}
}

// A chunked body (no Content-Length) over the cap is refused when read.
func TestChunkedBodyCapped(t *testing.T) {
	c, _, _ := startAPI(t)
	hub := NewHub(1)
	_ = hub
	pr, pw := io.Pipe()
	go func() {
		chunk := strings.Repeat("y", 4096)
		for i := 0; i < (MaxBody/4096)+4; i++ {
			if _, err := pw.Write([]byte(chunk)); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "http://simproof/v1/health", pr)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// /v1/health is GET-only: the point is that the server answered without
	// reading an unbounded body.
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestSocketMode(t *testing.T) {
	_, path, _ := startAPI(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("mode %v, want socket 0660", fi.Mode())
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	c, path, _ := startAPI(t)
	_, err := ListenUnix(path, 0o660, -1)
	if !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("second listen: %v, want ErrSocketInUse", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path", err)
	}
	// The first daemon still serves.
	resp, err := c.Get("http://simproof/v1/health")
	if err != nil {
		t.Fatalf("first daemon lost its socket: %v", err)
	}
	resp.Body.Close()
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	// A socket file nobody listens on, as a crashed daemon leaves it.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	l2, err := ListenUnix(path, 0o600, -1)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
}

func TestNonSocketNotRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(path, 0o600, -1); err == nil {
		t.Fatal("listened over a regular file")
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Error("regular file was touched")
	}
}

func TestEventsStream(t *testing.T) {
	m := testModem("356938035643809")
	c, _, reg := startAPI(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://simproof/v1/events", nil)
	req.Header.Set("Last-Event-ID", "0")
	c.Timeout = 0
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	reg.Remove("356938035643809")
	sc := bufio.NewScanner(resp.Body)
	var got []string
	for sc.Scan() && len(got) < 3 {
		line := sc.Text()
		if strings.HasPrefix(line, "id: ") {
			got = append(got, "id")
		}
		if strings.HasPrefix(line, "event: ") {
			got = append(got, line)
		}
		if strings.HasPrefix(line, "data: ") {
			got = append(got, "data")
		}
	}
	want := []string{"id", "event: modem.removed", "data"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stream %v, want %v", got, want)
	}
}

func TestHubReplayAndSlowSubscriber(t *testing.T) {
	h := NewHub(4)
	first := h.next
	for i := 0; i < 6; i++ {
		h.Publish("x", i)
	}
	ch, cancel := h.Subscribe(first + 2) // seen the first three
	defer cancel()
	var ids []uint64
	for len(ids) < 3 {
		select {
		case ev := <-ch:
			ids = append(ids, ev.ID)
		case <-time.After(time.Second):
			t.Fatalf("replay stalled at %v", ids)
		}
	}
	if fmt.Sprint(ids) != fmt.Sprint([]uint64{first + 3, first + 4, first + 5}) {
		t.Errorf("replayed %v, want the last three after %d", ids, first+2)
	}
	// A subscriber that never reads is dropped, not waited for.
	slow, cancelSlow := h.Subscribe(0)
	defer cancelSlow()
	for i := 0; i < 200; i++ {
		h.Publish("x", i)
	}
	n := 0
	for range slow {
		n++
	}
	if n == 0 || n >= 200 {
		t.Errorf("slow subscriber got %d events; want it dropped after its buffer", n)
	}
}
