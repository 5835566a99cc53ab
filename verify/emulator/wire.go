package emulator

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ProblemTypeBase prefixes the problem+json type URI; the fragment is the
// error_code, as the real API's "…/api-errors#not_mobile_ip" types are.
const ProblemTypeBase = "https://developer.idlayr.com/docs/reference/api-errors#"

// Problem is the IDlayr error body (RFC 9457 application/problem+json plus a
// stable error_code; the OAuth endpoint adds RFC 6749's error fields).
type Problem struct {
	Type             string `json:"type"`
	Title            string `json:"title"`
	Status           int    `json:"status"`
	Detail           string `json:"detail"`
	ErrorCode        string `json:"error_code"`
	Error            string `json:"error,omitempty"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// IDlayr error codes the emulator answers with.
const (
	CodePhoneFormatInvalid     = "phone_format_invalid"
	CodeMNONotSupported        = "mno_not_supported"
	CodeMNORedirectUnsupported = "mno_redirect_unsupported"
	CodeNotMobileIP            = "not_mobile_ip"
	CodeIPMSISDNMismatch       = "ip_msisdn_mismatch"
	CodeCheckNotFound          = "check_not_found"
	CodeRateLimited            = "rate_limited"
	CodeUnauthorized           = "unauthorized"
	CodeInsufficientScope      = "insufficient_scope"
	CodeBadRequest             = "bad_request"
	CodeServiceUnavailable     = "service_unavailable"
	CodeCheckExpired           = "check_expired"
	CodeCheckURLUsed           = "check_url_used"
	CodeSessionInvalid         = "session_invalid"
	CodeNotFound               = "not_found"
	CodeMethodNotAllowed       = "method_not_allowed"
	CodeBodyTooLarge           = "body_too_large"
	CodeRedirectURLInvalid     = "redirect_url_invalid"
)

func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	writeProblemBody(w, Problem{
		Type:      ProblemTypeBase + code,
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		ErrorCode: code,
	})
}

func writeProblemBody(w http.ResponseWriter, p Problem) {
	b, _ := json.Marshal(p) // plain struct: cannot fail
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	w.Write(append(b, '\n')) //nolint:errcheck // the client may be gone
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n')) //nolint:errcheck // the client may be gone
}

func redirect(w http.ResponseWriter, location string) {
	// Set directly: http.Redirect would clean and re-escape the Location,
	// and the emulator must be able to send relative and badly encoded ones.
	w.Header().Set("Location", location)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusFound)
}

func writeRetryAfter(w http.ResponseWriter, d time.Duration) {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(s))
}

var errBodyTooLarge = errors.New("body too large")

// readBody reads at most maxBody bytes of the request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errBodyTooLarge
	}
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return b, nil
}

func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// jsonKeys lists the top-level keys of a JSON object body, for observations.
func jsonKeys(b []byte) []string {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return sortedKeys(m)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails on Linux (Go 1.24+ panics instead)
	return hex.EncodeToString(b)
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b) //nolint:errcheck // as above
	return base64.RawURLEncoding.EncodeToString(b)
}

func uuid4() string {
	b := make([]byte, 16)
	rand.Read(b) //nolint:errcheck // as above
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// withQuery adds params to u's query, keeping what is there.
func withQuery(u string, params url.Values) (string, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	q := pu.Query()
	for k, vs := range params {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	pu.RawQuery = q.Encode()
	return pu.String(), nil
}

// sleep waits d, or until the request or the emulator ends.
func (e *Emulator) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-e.ctx.Done():
		return false
	}
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeProblem(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method not allowed")
}
