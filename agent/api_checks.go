package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/redirect"
)

// maxWait bounds ?wait= so a forgotten long poll cannot hold a connection
// forever.
const maxWait = 5 * time.Minute

// CheckAPI serves checks, connect/disconnect and open.
type CheckAPI struct {
	S        *Scheduler
	Registry *Registry
}

// Register adds the routes to api.
func (c *CheckAPI) Register(api *API) {
	api.Handle("POST /v1/checks", c.create)
	api.Handle("GET /v1/checks", c.list)
	api.Handle("GET /v1/checks/{id}", c.get)
	api.Handle("POST /v1/modems/{id}/connect", c.connect)
	api.Handle("POST /v1/modems/{id}/disconnect", c.disconnect)
	api.Handle("POST /v1/modems/{id}/open", c.open)
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// bad requests; an over-cap body is 413.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("empty body; a JSON object is required")
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeProblem(w, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("request body over the %d-byte cap", MaxBody))
		return false
	case err != nil:
		writeProblem(w, http.StatusBadRequest, CodeBadRequest, "malformed request: "+err.Error())
		return false
	}
	return true
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.retry > 0 {
			writeRetryProblem(w, ae.status, ae.code, ae.msg, ae.retry)
			return
		}
		writeProblem(w, ae.status, ae.code, ae.msg)
		return
	}
	code, msg, _ := classify(err)
	status := http.StatusBadGateway
	switch code {
	case verify.CodeNoBearer, verify.CodeModemGone, "unsupported_bearer":
		status = http.StatusServiceUnavailable
	case CodeInternal:
		status = http.StatusInternalServerError
	}
	if errors.Is(err, ErrJournal) {
		status, code = http.StatusInternalServerError, "journal_error"
	}
	writeProblem(w, status, code, msg)
}

// parseWait reads ?wait=DURATION (Go syntax or seconds).
func parseWait(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, err2 := strconv.Atoi(v)
		if err2 != nil {
			return 0, fmt.Errorf("wait=%q is not a duration like 30s", v)
		}
		d = time.Duration(secs) * time.Second
	}
	if d < 0 {
		return 0, fmt.Errorf("wait must not be negative")
	}
	return min(d, maxWait), nil
}

// waitFinal blocks until the live check ends, wait passes or the client leaves.
func waitFinal(ctx context.Context, l *liveCheck, wait time.Duration) {
	if l == nil || wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-l.done:
	case <-t.C:
	case <-ctx.Done():
	}
}

func liftWriteDeadline(w http.ResponseWriter, wait time.Duration) {
	if wait > 0 {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + 30*time.Second))
	}
}

func (c *CheckAPI) create(w http.ResponseWriter, r *http.Request) {
	wait, err := parseWait(r)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	var req CheckRequest
	if !decode(w, r, &req) {
		return
	}
	check, live, created, err := c.S.Submit(req)
	if err != nil {
		writeErr(w, err)
		return
	}
	liftWriteDeadline(w, wait)
	waitFinal(r.Context(), live, wait)
	if live != nil {
		check = live.snapshot()
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/v1/checks/"+check.ID)
	status := http.StatusAccepted
	if check.Final() {
		status = http.StatusOK
	}
	writeJSON(w, status, check)
}

func (c *CheckAPI) get(w http.ResponseWriter, r *http.Request) {
	wait, err := parseWait(r)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	id := r.PathValue("id")
	if !validSelector(id) {
		// No check has such an id: the catalogue's answer for an unknown one.
		writeProblem(w, http.StatusNotFound, "check_not_found", "no check with that id")
		return
	}
	check, live, err := c.S.Get(id)
	if err != nil {
		writeErr(w, err)
		return
	}
	liftWriteDeadline(w, wait)
	waitFinal(r.Context(), live, wait)
	if live != nil {
		check = live.snapshot()
	}
	writeJSON(w, http.StatusOK, check)
}

// CheckList is GET /v1/checks.
type CheckList struct {
	Checks []*Check `json:"checks"`
}

func (c *CheckAPI) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeProblem(w, http.StatusBadRequest, CodeBadRequest, "limit must be 1 to 1000")
			return
		}
		limit = n
	}
	status, modemID := q.Get("status"), q.Get("modem")
	checks, err := c.S.o.Journal.List(func(ch *Check) bool {
		return (status == "" || ch.Status == status) && (modemID == "" || ch.Modem == modemID)
	}, limit)
	if err != nil {
		writeErr(w, err)
		return
	}
	for i, ch := range checks {
		if _, live, _ := c.S.Get(ch.ID); live != nil {
			checks[i] = live.snapshot()
		}
	}
	if checks == nil {
		checks = []*Check{}
	}
	writeJSON(w, http.StatusOK, CheckList{Checks: checks})
}

// ConnectRequest is POST /v1/modems/{id}/connect.
type ConnectRequest struct {
	APN    string `json:"apn"`
	IPType string `json:"ip_type"`
}

func (c *CheckAPI) lookup(w http.ResponseWriter, r *http.Request) (modem.Modem, modem.Info, bool) {
	id := r.PathValue("id")
	if !validSelector(id) {
		writeProblem(w, http.StatusBadRequest, CodeBadRequest, "malformed modem id")
		return nil, modem.Info{}, false
	}
	m, info, err := c.Registry.Lookup(id)
	if err != nil {
		writeProblem(w, http.StatusNotFound, CodeModemNotFound, fmt.Sprintf("no modem %q", id))
		return nil, modem.Info{}, false
	}
	return m, info, true
}

// optionalBody decodes a body when there is one.
func optionalBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		return true
	}
	return decode(w, r, v)
}

func (c *CheckAPI) connect(w http.ResponseWriter, r *http.Request) {
	var req ConnectRequest
	if !optionalBody(w, r, &req) {
		return
	}
	m, info, ok := c.lookup(w, r)
	if !ok {
		return
	}
	err := c.S.TryUse(info.ID, func() error {
		p, err := c.S.ConnectParams(info)
		if err != nil {
			return err
		}
		if req.APN != "" {
			p.APN = req.APN
		}
		if req.IPType != "" {
			p.IPType = strings.ToLower(req.IPType)
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
		defer cancel()
		d, err := m.Connect(ctx, p)
		if err != nil {
			return err
		}
		_, err = c.S.o.Pinner.Pin(ctx, info.ID, d)
		return err
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	_, info, _ = c.Registry.Lookup(info.ID)
	writeJSON(w, http.StatusOK, info)
}

func (c *CheckAPI) disconnect(w http.ResponseWriter, r *http.Request) {
	m, info, ok := c.lookup(w, r)
	if !ok {
		return
	}
	err := c.S.TryUse(info.ID, func() error {
		c.S.o.Pinner.Unpin(info.ID)
		ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
		defer cancel()
		return m.Disconnect(ctx)
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	_, info, _ = c.Registry.Lookup(info.ID)
	writeJSON(w, http.StatusOK, info)
}

// OpenResponse is POST /v1/modems/{id}/open's answer.
type OpenResponse struct {
	*redirect.Result
	Modem     string `json:"modem"`
	Interface string `json:"interface"`
}

func (c *CheckAPI) open(w http.ResponseWriter, r *http.Request) {
	var req redirect.OpenRequest
	if !decode(w, r, &req) {
		return
	}
	if !strings.HasPrefix(strings.ToLower(req.URL), "https://") {
		writeProblem(w, http.StatusBadRequest, "bad_url", "url must be an absolute https URL")
		return
	}
	if req.MaxHops < 0 || req.MaxHops > 50 {
		writeProblem(w, http.StatusBadRequest, CodeBadRequest, "max_hops must be 0 to 50")
		return
	}
	m, info, ok := c.lookup(w, r)
	if !ok {
		return
	}
	var out OpenResponse
	err := c.S.TryUse(info.ID, func() error {
		ctx, cancel := context.WithTimeout(r.Context(), c.S.o.Checks.TTLCap)
		defer cancel()
		p, err := c.S.ConnectParams(info)
		if err != nil {
			return err
		}
		d, err := m.Connect(ctx, p)
		if err != nil {
			return fmt.Errorf("bring up the data session: %w", err)
		}
		client, err := c.S.o.Pinner.Pin(ctx, info.ID, d)
		if err != nil {
			return err
		}
		res, err := redirect.Open(ctx, client, req, redirect.Options{MaxHops: c.S.o.Checks.HopLimit,
			HopTimeout: c.S.o.Checks.HopTimeout, Interface: d.Interface})
		if err != nil {
			return err
		}
		out = OpenResponse{Result: res, Modem: info.ID, Interface: d.Interface}
		return nil
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
