package agent

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/simproof/simproof/modem"
)

// MaxBody caps every request body: the API's requests are small JSON objects.
const MaxBody = 64 << 10

// Health is GET /v1/health.
type Health struct {
	Status        string          `json:"status"`
	Version       string          `json:"version"`
	UptimeSeconds int64           `json:"uptime_seconds"`
	Modems        int             `json:"modems"`
	Backends      []BackendStatus `json:"backends"`
}

// BackendStatus says how one backend is doing.
type BackendStatus struct {
	Name  string `json:"name"`
	State string `json:"state"` // running, starting, failed
	Error string `json:"error,omitempty"`
}

// API serves the socket API's handlers.
type API struct {
	Version  string
	Started  time.Time
	Registry *Registry
	Hub      *Hub
	Status   func() []BackendStatus
	// Peers decides who may use the API (SO_PEERCRED); nil allows all.
	Peers *PeerPolicy

	mux *http.ServeMux
}

// Handler returns the API's root handler.
func (a *API) Handler() http.Handler {
	a.mux = http.NewServeMux()
	a.mux.HandleFunc("GET /v1/health", a.health)
	a.mux.HandleFunc("GET /v1/modems", a.listModems)
	a.mux.HandleFunc("GET /v1/modems/{id}", a.getModem)
	a.mux.HandleFunc("GET /v1/events", a.events)
	return http.HandlerFunc(a.serve)
}

// Handle registers more routes (checks, connect, metrics) before serving.
func (a *API) Handle(pattern string, h http.HandlerFunc) { a.mux.HandleFunc(pattern, h) }

// serve caps bodies and turns the mux's plain-text 404/405 into problem+json.
func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	if ok, why := a.Peers.Allow(r); !ok {
		writeProblem(w, http.StatusForbidden, CodeForbidden, why)
		return
	}
	if r.ContentLength > MaxBody {
		writeProblem(w, http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
			fmt.Sprintf("request body of %d bytes is over the %d-byte cap", r.ContentLength, MaxBody))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	h, pattern := a.mux.Handler(r)
	if pattern == "" {
		rec := &statusRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			if allow := rec.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
			}
			writeProblem(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
				fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path))
			return
		}
		writeProblem(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no API path %s", r.URL.Path))
		return
	}
	// Serve through the mux itself: only its routing fills r.PathValue.
	a.mux.ServeHTTP(w, r)
}

// statusRecorder captures what the mux's fallback handler would have sent.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header { return s.header }
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}
func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return len(b), nil
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	h := Health{Status: "ok", Version: a.Version, UptimeSeconds: int64(time.Since(a.Started).Seconds()),
		Modems: len(a.Registry.List())}
	if a.Status != nil {
		h.Backends = a.Status()
	}
	for _, b := range h.Backends {
		if b.State == "failed" {
			h.Status = "degraded"
		}
	}
	if h.Backends == nil {
		h.Backends = []BackendStatus{}
	}
	writeJSON(w, http.StatusOK, h)
}

// ModemList is GET /v1/modems.
type ModemList struct {
	Modems []modem.Info `json:"modems"`
}

func (a *API) listModems(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, ModemList{Modems: a.Registry.List()})
}

func (a *API) getModem(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validSelector(id) {
		writeProblem(w, http.StatusBadRequest, CodeBadRequest, "malformed modem id")
		return
	}
	_, info, err := a.Registry.Lookup(id)
	if errors.Is(err, modem.ErrNotFound) {
		writeProblem(w, http.StatusNotFound, CodeModemNotFound, fmt.Sprintf("no modem %q", id))
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// validSelector bounds what a path may name: ids are IMEIs or ModemManager
// equipment identifiers, selectors imei:/iccid: plus digits.
func validSelector(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == ':' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// events streams server-sent events; Last-Event-ID resumes.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeProblem(w, http.StatusInternalServerError, CodeInternal, "streaming unsupported")
		return
	}
	var last uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		last, _ = strconv.ParseUint(v, 10, 64)
	}
	ch, cancel := a.Hub.Subscribe(last)
	defer cancel()
	// The server's WriteTimeout would cut a long-lived stream; instead each
	// write gets its own deadline, so a client that stops reading is
	// dropped rather than holding the handler forever.
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	fmt.Fprint(bw, ": simproof events\n\n")
	_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	bw.Flush()
	fl.Flush()
	keepalive := time.NewTicker(30 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			fmt.Fprint(bw, ": keepalive\n\n")
		case ev, ok := <-ch:
			if !ok {
				return // dropped as too slow; the client resumes with Last-Event-ID
			}
			fmt.Fprintf(bw, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, ev.Data)
		}
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := bw.Flush(); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
