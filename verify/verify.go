// Package verify owns the provider abstraction of simproof's checks: the
// Provider interface every verification provider implements, the request and
// result types, the hop trace of the device step, the typed error whose Code
// is the public error catalogue (spec/api.md), and the helpers every provider
// and the daemon share: secret redaction, secret files, trust roots and phone
// number normalisation.
//
// The providers live below it (verify/idlayr, verify/plasgate); the one
// redirect engine both use for the device step, and which device-only mode
// calls directly, is verify/redirect.
package verify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Provider runs one verification check end to end: server-side calls on its
// own ordinary client, the device step on Request.Device.
//
// Check returns a Result when the check completed, whether or not the number
// was verified (Result.Verified, Result.Reason), and a *Error when it could
// not complete (expired, provider error, device step failure ...). Where the
// device step had started, the error's Trace holds the hops made so far.
type Provider interface {
	Name() string
	Check(ctx context.Context, req Request) (*Result, error)
}

// Resumer is implemented by providers that can finish a check a previous run
// of the daemon created, knowing only the provider's check id (IDlayr v0.1:
// the result is a GET away). Checks of other kinds cannot be resumed.
type Resumer interface {
	Resume(ctx context.Context, providerCheckID string) (*Result, error)
}

// Request is one check to run.
type Request struct {
	// PhoneNumber is E.164 ("+447700900124"); providers send the digits
	// without "+". It may be empty only where the provider's scope does not
	// need a number (PlasGate mobile_id, phone).
	PhoneNumber string
	// Device is the client pinned to the modem's interface: the device step
	// runs on it and nowhere else. The engine copies it and replaces its
	// redirect policy and cookie jar; the Transport is used as is.
	Device *http.Client
	// Interface is the name of the interface Device is pinned to, recorded
	// in every hop of the trace.
	Interface string
	// Scope (PlasGate) and Version (IDlayr "v0.1", "v0.2") override the
	// provider's configuration for this check; "" keeps it.
	Scope   string
	Version string
	// Progress, when set, is told of each stage as it happens. A non-nil
	// error from it stops the check before the next stage (the journal could
	// not record the provider's check id, so spending more would risk losing
	// it).
	Progress Progress
}

// Stage is a step of a check the journal may want to record.
type Stage string

const (
	// StageCreated: the provider's check exists (IDlayr); Event.CheckID is
	// set. Reported before the device step, so a restart can resume the
	// check or report it.
	StageCreated Stage = "created"
	// StageDevice: the device step is starting.
	StageDevice Stage = "device"
	// StageCodeReceived: the device step returned a one-time code, which is
	// being redeemed (IDlayr v0.2 PATCH, PlasGate exchange). The code itself
	// is never reported: a check interrupted now cannot be resumed.
	StageCodeReceived Stage = "code_received"
	// StageResult: the provider is being asked for the result (polling).
	StageResult Stage = "result"
)

// Event is one stage of a check.
type Event struct {
	Provider string
	Stage    Stage
	CheckID  string // the provider's check id, where it has one
}

// Progress receives the stages of a check, synchronously, from the
// goroutine running it.
type Progress func(Event) error

// Report calls p if it is set, wrapping its error.
func (p Progress) Report(e Event) error {
	if p == nil {
		return nil
	}
	if err := p(e); err != nil {
		return fmt.Errorf("progress %s: %w", e.Stage, err)
	}
	return nil
}

// Result is a completed check: the result object of the public API plus the
// device step's trace. Verified is nil where the check does not decide it
// (PlasGate mobile_id or phone alone, device-only checks).
type Result struct {
	Provider string `json:"provider,omitempty"`
	Verified *bool  `json:"verified"`
	// Reason is the catalogue code of a completed-but-not-verified outcome
	// (operator_mismatch, not_mobile_ip), empty otherwise.
	Reason string `json:"reason,omitempty"`

	// IDlayr.
	CheckID           string `json:"check_id,omitempty"`
	Match             *bool  `json:"match,omitempty"`
	ProviderStatus    string `json:"provider_status,omitempty"`
	ProviderErrorCode string `json:"provider_error_code,omitempty"`
	// NetworkID and NetworkName are the operator IDlayr's coverage
	// preflight saw the device on.
	NetworkID   string `json:"network_id,omitempty"`
	NetworkName string `json:"network_name,omitempty"`

	// PlasGate.
	Scope               string `json:"scope,omitempty"`
	PhoneNumberVerified *bool  `json:"phone_number_verified,omitempty"`
	MobileID            string `json:"mobile_id,omitempty"`
	Sub                 string `json:"sub,omitempty"`
	SID                 string `json:"sid,omitempty"`
	LoginHint           string `json:"login_hint,omitempty"`
	PhoneNumber         string `json:"phone_number,omitempty"`
	ErrorDescription    string `json:"error_description,omitempty"`
	// Claims holds every other claim the provider returned: PlasGate profile
	// (KYC) data and anything unrecognised. Returned live, never journaled
	// (see ForJournal).
	Claims map[string]any `json:"claims,omitempty"`

	// Trace is the device step, one entry per request. The API shows it
	// beside the result, not inside it.
	Trace []Hop `json:"-"`
}

// ForJournal returns a copy fit to be stored: without Claims, which may hold
// KYC data that is returned live only.
func (r *Result) ForJournal() *Result {
	if r == nil {
		return nil
	}
	c := *r
	c.Claims = nil
	c.Trace = append([]Hop(nil), r.Trace...)
	return &c
}

// String is a one-line summary for logs: no claims, phone numbers masked.
func (r *Result) String() string {
	if r == nil {
		return "<nil result>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s verified=%s", r.Provider, boolText(r.Verified))
	add := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	add("reason", r.Reason)
	add("check_id", r.CheckID)
	if r.Match != nil {
		add("match", boolText(r.Match))
	}
	add("provider_status", r.ProviderStatus)
	add("provider_error_code", r.ProviderErrorCode)
	add("scope", r.Scope)
	if r.PhoneNumberVerified != nil {
		add("phone_number_verified", boolText(r.PhoneNumberVerified))
	}
	add("login_hint", MaskPhone(r.LoginHint))
	add("phone_number", MaskPhone(r.PhoneNumber))
	if r.ErrorDescription != "" {
		add("error_description", fmt.Sprintf("%q", RedactText(r.ErrorDescription)))
	}
	fmt.Fprintf(&b, " hops=%d", len(r.Trace))
	return b.String()
}

func boolText(b *bool) string {
	if b == nil {
		return "null"
	}
	if *b {
		return "true"
	}
	return "false"
}

// Bool returns a pointer to b, for the tri-state fields.
func Bool(b bool) *bool { return &b }

// Hop is one request of a device step as the trace records it. URL is
// redacted (RedactURL); no header, cookie or body is ever recorded.
type Hop struct {
	URL           string  `json:"url"`
	Method        string  `json:"method,omitempty"`
	Status        int     `json:"status"`
	Interface     string  `json:"interface,omitempty"`
	LocalAddress  string  `json:"local_address,omitempty"`
	RemoteAddress string  `json:"remote_address,omitempty"`
	DurationMS    float64 `json:"duration_ms"`
	Error         string  `json:"error,omitempty"`
}
