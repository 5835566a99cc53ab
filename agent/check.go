package agent

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/redirect"
)

// Check statuses (spec/api.md).
const (
	StatusQueued      = "queued"
	StatusRunning     = "running"
	StatusCompleted   = "completed"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted"
)

// CheckError is a failed or interrupted check's reason.
type CheckError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Check is the check object of the API and the journal's record. What the
// journal keeps is redacted (see forJournal).
type Check struct {
	ID             string       `json:"id"`
	Provider       string       `json:"provider"`
	Modem          string       `json:"modem"`
	PhoneNumber    string       `json:"phone_number,omitempty"`
	URL            string       `json:"url,omitempty"`
	StopAt         string       `json:"stop_at,omitempty"`
	Scope          string       `json:"scope,omitempty"`
	Version        string       `json:"version,omitempty"`
	IdempotencyKey string       `json:"idempotency_key,omitempty"`
	Status         string       `json:"status"`
	Stage          string       `json:"stage,omitempty"`
	ProviderCheck  string       `json:"provider_check_id,omitempty"`
	Result         *CheckResult `json:"result,omitempty"`
	Error          *CheckError  `json:"error,omitempty"`
	Trace          []verify.Hop `json:"trace"`
	CreatedAt      time.Time    `json:"created_at"`
	StartedAt      *time.Time   `json:"started_at,omitempty"`
	FinishedAt     *time.Time   `json:"finished_at,omitempty"`
}

// CheckResult is result{}: the provider's fields, or a device-only outcome.
type CheckResult struct {
	*verify.Result
	Device   *redirect.Result
	Redacted bool // device-only parts were redacted (read from the journal)
}

// MarshalJSON flattens both halves into one object; verified is always
// present (null where the check does not decide it).
func (r CheckResult) MarshalJSON() ([]byte, error) {
	out := map[string]any{"verified": nil}
	merge := func(v any) error {
		if v == nil {
			return nil
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		for k, val := range m {
			out[k] = val
		}
		return nil
	}
	if r.Result != nil {
		if err := merge(r.Result); err != nil {
			return nil, err
		}
	}
	if r.Device != nil {
		if err := merge(r.Device); err != nil {
			return nil, err
		}
		delete(out, "trace") // the check carries the trace beside the result
	}
	if r.Redacted {
		out["redacted"] = true
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads both halves back.
func (r *CheckResult) UnmarshalJSON(b []byte) error {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return err
	}
	r.Result = &verify.Result{}
	if err := json.Unmarshal(b, r.Result); err != nil {
		return err
	}
	if _, ok := probe["final_status"]; ok {
		r.Device = &redirect.Result{}
		if err := json.Unmarshal(b, r.Device); err != nil {
			return err
		}
		if raw, ok := probe["body"]; ok && len(raw) > 0 && raw[0] == '{' {
			r.Device.Body = raw
		}
	}
	_ = json.Unmarshal(probe["redacted"], &r.Redacted)
	return nil
}

// Final says whether the check has ended.
func (c *Check) Final() bool {
	return c.Status == StatusCompleted || c.Status == StatusFailed || c.Status == StatusInterrupted
}

// forJournal is the redacted copy the journal and events keep: device-only
// bodies and redirect parameters may hold codes, PlasGate claims may hold
// KYC data; both are returned live only.
func (c *Check) forJournal() *Check {
	cp := *c
	cp.Trace = append([]verify.Hop(nil), c.Trace...)
	if c.Result != nil {
		r := CheckResult{}
		if c.Result.Result != nil {
			r.Result = c.Result.Result.ForJournal()
			r.Result.Trace = nil
		}
		if d := c.Result.Device; d != nil {
			r.Device = d.Redacted()
			r.Device.Trace = nil
			r.Redacted = true
		}
		cp.Result = &r
	}
	cp.URL = verify.RedactURL(c.URL)
	return &cp
}

// newCheckID returns a sortable unique id: time first, so ids order by
// creation, then randomness.
func newCheckID(now time.Time) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return "chk_" + strconv.FormatInt(now.UnixMilli(), 36) + hex.EncodeToString(b[:])
}
