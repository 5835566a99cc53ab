package agent

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Problem is an RFC 9457 problem document with simproof's stable code.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
}

// Stable codes of the error catalogue (spec/api.md). Never rename one.
const (
	CodeBadRequest       = "bad_request"
	CodeNotFound         = "not_found"
	CodeModemNotFound    = "modem_not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeBodyTooLarge     = "body_too_large"
	CodeForbidden        = "forbidden"
	CodeInternal         = "internal_error"
)

var titles = map[string]string{
	CodeBadRequest:       "Malformed request",
	CodeNotFound:         "No such API path",
	CodeModemNotFound:    "Unknown modem",
	CodeMethodNotAllowed: "Method not allowed",
	CodeBodyTooLarge:     "Request body too large",
	CodeForbidden:        "Peer not allowed",
	CodeInternal:         "Internal error",
}

func writeProblem(w http.ResponseWriter, status int, code, detail string) {
	title := titles[code]
	if title == "" {
		title = http.StatusText(status)
	}
	p := Problem{Type: "urn:simproof:problem:" + code, Title: title, Status: status, Detail: detail, Code: code}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeRetryProblem(w http.ResponseWriter, status int, code, detail string, after time.Duration) {
	secs := int(after / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeProblem(w, status, code, detail)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
