package verify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/simproof/simproof/modem"
)

// Catalogue codes (spec/api.md) a provider or the redirect engine returns.
// Never rename one; add freely.
const (
	CodeInvalidPhoneNumber    = "invalid_phone_number"
	CodeUnsupportedOperator   = "unsupported_operator"
	CodeNotMobileIP           = "not_mobile_ip"
	CodeOperatorMismatch      = "operator_mismatch"
	CodeRateLimited           = "rate_limited"
	CodeProviderCheckNotFound = "provider_check_not_found"
	CodeExpired               = "expired"
	CodeProviderError         = "provider_error"
	CodeProviderAuthFailed    = "provider_auth_failed"
	CodeConnectTimeout        = "connect_timeout"
	CodeTLSError              = "tls_error"
	CodeClockNotSynced        = "clock_not_synced"
	CodeRedirectLimit         = "redirect_limit"
	CodeRedirectLoop          = "redirect_loop"
	CodeBadRedirect           = "bad_redirect"
	CodeNoBearer              = "no_bearer"
	CodeModemGone             = "modem_gone"
	CodeInterrupted           = "interrupted"
	CodeConnectFailed         = "connect_failed" // refused, unreachable, DNS failure: not a timeout
	CodeBadURL                = "bad_url"        // the URL to open is not an absolute https URL
)

// Error is a check that could not complete, with the catalogue code a caller
// branches on (errors.As). Message never holds a secret: it is built from
// redacted parts only.
type Error struct {
	Code         string        // catalogue code
	Message      string        // human-readable, redacted
	ProviderCode string        // the provider's own code (error_code, problem type, ?error=)
	HTTPStatus   int           // the provider's HTTP status, where one answered
	RetryAfter   time.Duration // from a 429 whose Retry-After did not fit the deadline
	Trace        []Hop         // the device step so far, where it had started
	Err          error         // the cause, for errors.Is (modem.ErrNoBearer, context.Canceled ...)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Code)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (HTTP %d", e.HTTPStatus)
		if e.ProviderCode != "" {
			fmt.Fprintf(&b, ", %s", RedactText(e.ProviderCode))
		}
		b.WriteString(")")
	} else if e.ProviderCode != "" {
		fmt.Fprintf(&b, " (%s)", RedactText(e.ProviderCode))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, &Error{Code: c}) true for any *Error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code != "" && t.Code == e.Code
}

// Errorf builds an *Error with a formatted message. Pass only redacted
// values.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the catalogue code of err ("" when err is not an *Error).
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// TransportError classifies a failed HTTP exchange (a dial, a TLS handshake,
// a read) into the catalogue, prefixing op ("token", "hop 2 GET host" ...).
// now is the clock the certificate is judged against (time.Now in
// production). The message is redacted; the cause stays reachable with
// errors.Is/As.
func TransportError(op string, err error, now time.Time) *Error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	cause := err
	if errors.As(err, &ue) {
		// url.Error repeats the whole URL, query included: keep the cause only.
		cause = ue.Err
	}
	mk := func(code, msg string) *Error {
		return &Error{Code: code, Message: op + ": " + msg, Err: cause}
	}
	var inv x509.CertificateInvalidError
	switch {
	case errors.Is(cause, modem.ErrNoBearer):
		return mk(CodeNoBearer, RedactText(cause.Error()))
	case errors.Is(cause, modem.ErrGone):
		return mk(CodeModemGone, RedactText(cause.Error()))
	case errors.Is(cause, context.Canceled):
		return mk(CodeInterrupted, "cancelled")
	case errors.As(cause, &inv) && inv.Reason == x509.Expired && inv.Cert != nil && now.Before(inv.Cert.NotBefore):
		return mk(CodeClockNotSynced, fmt.Sprintf(
			"the system clock (%s) is before the server certificate's validity (not before %s): set the clock (NTP) and retry",
			now.UTC().Format(time.RFC3339), inv.Cert.NotBefore.UTC().Format(time.RFC3339)))
	case isTLS(cause):
		return mk(CodeTLSError, RedactText(cause.Error()))
	case isTimeout(cause):
		return mk(CodeConnectTimeout, RedactText(cause.Error()))
	default:
		return mk(CodeConnectFailed, RedactText(cause.Error()))
	}
}

func isTLS(err error) bool {
	var (
		cv  *tls.CertificateVerificationError
		inv x509.CertificateInvalidError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		rh  tls.RecordHeaderError
		al  tls.AlertError
		ech *tls.ECHRejectionError
	)
	if errors.As(err, &cv) || errors.As(err, &inv) || errors.As(err, &ua) || errors.As(err, &he) ||
		errors.As(err, &rh) || errors.As(err, &al) || errors.As(err, &ech) {
		return true
	}
	// Handshake failures without a type of their own ("tls: ..." strings).
	return strings.Contains(err.Error(), "tls: ")
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
