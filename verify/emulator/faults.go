package emulator

import (
	"strings"
	"time"
)

// Faults are the behaviours a test can switch on. They are chosen per phone
// number (the IDlayr check's phone_number, PlasGate's login_hint) so one
// emulator can serve many tests at once; SetFaults("", f) sets the default
// for numbers without their own entry. They are read when a request arrives,
// so a change applies to checks already created.
type Faults struct {
	// Device chain (IDlayr and PlasGate, via the operator).

	// RedirectLoop makes the operator bounce between two URLs forever
	// (…/loop-a → …/loop-b → …/loop-a, the same URLs each time).
	RedirectLoop bool
	// ExtraHops inserts that many relay redirects on the operator after its
	// cookie is set. The normal chain is 3 redirects (4 requests); with
	// ExtraHops n it is n+3 redirects, so n >= 8 exceeds a 10-hop limit.
	ExtraHops int
	// SlowHop delays the operator's second (cookie-checking) hop.
	SlowHop time.Duration
	// BadLocation makes the operator's first hop answer with a relative
	// Location holding a raw space ("next hop?sid=…"); the hop it names is
	// served at both …/next hop (the space percent-encoded on the wire) and
	// …/hop2.
	BadLocation bool

	// IDlayr.

	// Match, when set, decides the check's match without consulting the
	// operator, and skips the mobile-source check (sandbox behaviour).
	Match *bool
	// NotMobileIP answers the check URL with 412 not_mobile_ip as if the
	// source were not mobile (PlasGate: ?error=access_denied).
	NotMobileIP bool
	// Mismatch answers the check URL with 409 ip_msisdn_mismatch.
	Mismatch bool
	// RedirectUnsupported answers the check URL with 501
	// mno_redirect_unsupported.
	RedirectUnsupported bool
	// MNONotSupported refuses check creation with 400 mno_not_supported.
	MNONotSupported bool
	// CreateRateLimit answers the first n create requests for the number
	// with 429 (no check created).
	CreateRateLimit int
	// RateLimitPolls answers the first n GETs of a check with 429.
	RateLimitPolls int
	// RetryAfter is the Retry-After of every 429 (default 1s, whole seconds).
	RetryAfter time.Duration
	// ServerErrorPolls answers the next n GETs (after RateLimitPolls) with
	// ServerErrorStatus (default 503) problem+json.
	ServerErrorPolls  int
	ServerErrorStatus int
	// PendingPolls keeps a v0.1 check PENDING for the first n GETs after its
	// device step finished; the (n+1)th GET shows it COMPLETED.
	PendingPolls int
	// Expire lets the device chain finish but never completes the check: it
	// stays PENDING and is EXPIRED once its ttl has passed.
	Expire bool
	// ErrorCode makes the check end in status ERROR with this error_code
	// once its device step finished (the device step itself succeeds).
	ErrorCode string
	// TTL overrides Config.CheckTTL for the number's new checks.
	TTL time.Duration

	// PlasGate.

	// StateMismatch returns a state different from the one sent.
	StateMismatch bool
	// PlasGateError ends the chain with redirect_uri?error=<it>
	// &error_description=…&state=… after the operator hops.
	PlasGateError string
	// Exchange403 and Exchange500 answer the exchange with that status.
	Exchange403, Exchange500 bool
	// VerifiedBool sends phone_number_verified as a JSON boolean instead of
	// the seed's "true"/"false" string.
	VerifiedBool bool
}

// SetFaults sets the faults for phone (E.164 digits; a leading '+' is
// ignored). phone "" sets the default for every number without an entry.
func (e *Emulator) SetFaults(phone string, f Faults) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults[strings.TrimPrefix(phone, "+")] = f
}

// ClearFaults removes every fault, default included.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = map[string]Faults{}
}

// FaultsFor is the faults in force for phone: its own entry, else its
// sandbox rule (IDlayr numbers only), else the default.
func (e *Emulator) FaultsFor(phone string) Faults {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.faultsLocked(phone, false)
}

func (e *Emulator) faultsLocked(phone string, idlayr bool) Faults {
	phone = strings.TrimPrefix(phone, "+")
	if f, ok := e.faults[phone]; ok && phone != "" {
		return f
	}
	if idlayr && !e.cfg.DisableSandbox {
		if f, ok := SandboxFaults(phone); ok {
			return f
		}
	}
	return e.faults[""]
}

// SandboxPrefix marks the IDlayr sandbox numbers: SandboxPrefix followed by
// one digit (from Ofcom's drama range 07700 900000–900999, never a real
// subscriber). The last digit selects the outcome:
//
//	0  COMPLETED, match true, from any source (operator not consulted)
//	1  COMPLETED, match false, from any source
//	2  check URL answers 412 not_mobile_ip
//	3  check URL answers 409 ip_msisdn_mismatch
//	4  create answers 400 mno_not_supported
//	5  check URL answers 501 mno_redirect_unsupported
//	6  the check never completes and EXPIRES after its ttl
//	7  the check ends in ERROR with error_code mno_timeout
//	8  the first poll answers 429 with Retry-After: 1, then match true
//	9  PENDING for the first 2 polls, then match true
const SandboxPrefix = "44770090099"

// SandboxFaults is the sandbox rule for phone, if it is a sandbox number.
func SandboxFaults(phone string) (Faults, bool) {
	phone = strings.TrimPrefix(phone, "+")
	if len(phone) != len(SandboxPrefix)+1 || !strings.HasPrefix(phone, SandboxPrefix) {
		return Faults{}, false
	}
	yes, no := true, false
	switch phone[len(phone)-1] {
	case '0':
		return Faults{Match: &yes}, true
	case '1':
		return Faults{Match: &no}, true
	case '2':
		return Faults{NotMobileIP: true}, true
	case '3':
		return Faults{Mismatch: true}, true
	case '4':
		return Faults{MNONotSupported: true}, true
	case '5':
		return Faults{RedirectUnsupported: true}, true
	case '6':
		return Faults{Expire: true}, true
	case '7':
		return Faults{ErrorCode: "mno_timeout"}, true
	case '8':
		return Faults{Match: &yes, RateLimitPolls: 1, RetryAfter: time.Second}, true
	case '9':
		return Faults{Match: &yes, PendingPolls: 2}, true
	}
	return Faults{}, false
}
