package verify_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simproof/simproof/modem"
	"github.com/simproof/simproof/verify"
)

func TestMaskPhone(t *testing.T) {
	tests := map[string]string{
		"447700900123":  "4477******23",
		"+447700900123": "+4477******23",
		"14155550100":   "1415*****00",
		"1234567":       "*******",
		"":              "",
		"no digits":     "no digits",
	}
	for in, want := range tests {
		if got := verify.MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://a.example/cb?code=abc123&state=xyz&x=1", "https://a.example/cb?code=REDACTED&state=REDACTED&x=1"},
		{"https://a.example/cb?session_state=s&private_key=k&access_token=t&client_secret=c&token=z",
			"https://a.example/cb?session_state=REDACTED&private_key=REDACTED&access_token=REDACTED&client_secret=REDACTED&token=REDACTED"},
		{"https://a.example/cb?CODE=abc&Code=def", "https://a.example/cb?CODE=REDACTED&Code=REDACTED"},
		{"https://a.example/cb?c%6Fde=abc", "https://a.example/cb?c%6Fde=REDACTED"},
		{"https://a.example/cb?x=1;code=abc", "https://a.example/cb?x=1;code=REDACTED"},
		{"https://a.example/cb#code=abc&state=s", "https://a.example/cb#code=REDACTED&state=REDACTED"},
		{"https://a.example/auth?login_hint=447700900123&phone_number=%2B447700900123&msisdn=447700900123",
			"https://a.example/auth?login_hint=4477******23&phone_number=%2B4477******23&msisdn=4477******23"},
		{"http://op.example/id/447700900123/x?ref=14155550100", "http://op.example/id/4477******23/x?ref=1415*****00"},
		{"https://user:pass@a.example/", "https://REDACTED@a.example/"},
		{"https://a.example/p?flag&code", "https://a.example/p?flag&code"},
		{"https://a.example/p?", "https://a.example/p?"},
		{"::not a url ?code=abc", "::not a url ?code=REDACTED"},
	}
	for _, tc := range tests {
		if got := verify.RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactText(t *testing.T) {
	tests := []struct{ in, want string }{
		{`GET /cb?code=abc&state=def failed`, `GET /cb?code=REDACTED&state=REDACTED failed`},
		{`{"code":"abc","check_id":"c1","access_token":"t\"x"}`, `{"code":"REDACTED","check_id":"c1","access_token":"REDACTED"}`},
		{"Authorization: Bearer 2YotnFZFEjr1zCsicMWpAA", "Authorization: REDACTED"},
		{"sent Bearer 2YotnFZFEjr1zCsicMWpAA to x", "sent Bearer REDACTED to x"},
		{"basic dXNlcjpwYXNz==", "basic REDACTED"},
		{"X-Secret: $5$rounds=535000$abc", "X-Secret: REDACTED"},
		{"number 447700900123 refused", "number 4477******23 refused"},
		{"at 2026-11-23T00:24:48Z", "at 2026-11-23T00:24:48Z"},
		{"auth_code=keep", "auth_code=keep"},
	}
	for _, tc := range tests {
		if got := verify.RedactText(tc.in); got != tc.want {
			t.Errorf("RedactText(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestRedactHeaderParamsJSON(t *testing.T) {
	h := http.Header{"Authorization": {"Basic x"}, "Cookie": {"a=b"}, "X-Secret": {"s"}, "Accept": {"*/*"}}
	r := verify.RedactHeader(h)
	if r.Get("Authorization") != verify.Redacted || r.Get("Cookie") != verify.Redacted || r.Get("X-Secret") != verify.Redacted || r.Get("Accept") != "*/*" {
		t.Errorf("RedactHeader = %v", r)
	}
	if h.Get("Authorization") != "Basic x" {
		t.Error("RedactHeader changed its input")
	}
	p := verify.RedactParams(map[string]string{"code": "c", "check_id": "id1", "login_hint": "447700900123"})
	if p["code"] != verify.Redacted || p["check_id"] != "id1" || p["login_hint"] != "4477******23" {
		t.Errorf("RedactParams = %v", p)
	}
	j := verify.RedactJSON([]byte(`{"check_id":"id","code":"c0de","nested":[{"state":"s"}],"n":{"token":12},"phone_number":"447700900123"}`))
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatal(err)
	}
	if s := string(j); strings.Contains(s, "c0de") || strings.Contains(s, `"s"`) || strings.Contains(s, "12") ||
		strings.Contains(s, "447700900123") || !strings.Contains(s, `"id"`) {
		t.Errorf("RedactJSON = %s", s)
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("ok", "s3cret+/=:\n", 0o600)
	b, err := verify.ReadSecretFile(ok)
	if err != nil || string(b) != "s3cret+/=:" {
		t.Fatalf("0600: %q %v", b, err)
	}
	if _, err := verify.ReadSecretFile(write("ro", "x", 0o400)); err != nil {
		t.Errorf("0400 refused: %v", err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o620, 0o660} {
		p := write(fmt.Sprintf("m%o", mode), "x", mode)
		_, err := verify.ReadSecretFile(p)
		if err == nil {
			t.Errorf("mode %04o accepted", mode)
			continue
		}
		if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), fmt.Sprintf("%04o", mode)) {
			t.Errorf("error %q does not name the file and mode %04o", err, mode)
		}
	}
	if _, err := verify.ReadSecretFile(write("empty", "\n", 0o600)); err == nil {
		t.Error("empty file accepted")
	}
	if _, err := verify.ReadSecretFile(dir); err == nil {
		t.Error("directory accepted")
	}
	if _, err := verify.ReadSecretFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestDigits(t *testing.T) {
	good := map[string]string{"+447700900124": "447700900124", "+44 7700-900124": "447700900124", "14155550100": "14155550100"}
	for in, want := range good {
		if got, err := verify.Digits(in); err != nil || got != want {
			t.Errorf("Digits(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "+", "+0447700900124", "+44(7700)900124", "+1234", "+1234567890123456", "abc"} {
		if _, err := verify.Digits(in); verify.CodeOf(err) != verify.CodeInvalidPhoneNumber {
			t.Errorf("Digits(%q): %v", in, err)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestTransportError(t *testing.T) {
	now := time.Now()
	future := &x509.Certificate{NotBefore: now.Add(time.Hour), NotAfter: now.Add(2 * time.Hour)}
	past := &x509.Certificate{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}
	wrap := func(err error) error {
		return &url.Error{Op: "Get", URL: "https://a.example/cb?code=s3cr3t", Err: err}
	}
	tests := []struct {
		err  error
		code string
	}{
		{wrap(fmt.Errorf("dial: %w", modem.ErrNoBearer)), verify.CodeNoBearer},
		{wrap(fmt.Errorf("dial: %w", modem.ErrGone)), verify.CodeModemGone},
		{wrap(x509.CertificateInvalidError{Cert: future, Reason: x509.Expired}), verify.CodeClockNotSynced},
		{wrap(x509.CertificateInvalidError{Cert: past, Reason: x509.Expired}), verify.CodeTLSError},
		{wrap(x509.UnknownAuthorityError{}), verify.CodeTLSError},
		{wrap(&net.OpError{Op: "dial", Err: timeoutErr{}}), verify.CodeConnectTimeout},
		{wrap(context.DeadlineExceeded), verify.CodeConnectTimeout},
		{wrap(context.Canceled), verify.CodeInterrupted},
		{wrap(errors.New("connection refused")), verify.CodeConnectFailed},
	}
	for _, tc := range tests {
		e := verify.TransportError("op", tc.err, now)
		if e.Code != tc.code {
			t.Errorf("%v: code %q, want %q", tc.err, e.Code, tc.code)
		}
		if strings.Contains(e.Error(), "s3cr3t") {
			t.Errorf("error shows the URL's secret: %v", e)
		}
		if !errors.Is(e, errors.Unwrap(tc.err)) {
			t.Errorf("%v does not wrap its cause", e)
		}
	}
}

func TestErrorBranching(t *testing.T) {
	var err error = fmt.Errorf("check 7: %w", &verify.Error{Code: verify.CodeRateLimited, HTTPStatus: 429,
		ProviderCode: "rate_limited", RetryAfter: 3 * time.Second})
	var e *verify.Error
	if !errors.As(err, &e) || e.RetryAfter != 3*time.Second {
		t.Fatal("errors.As failed")
	}
	if !errors.Is(err, &verify.Error{Code: verify.CodeRateLimited}) || errors.Is(err, &verify.Error{Code: verify.CodeExpired}) {
		t.Error("errors.Is by code")
	}
	if verify.CodeOf(err) != verify.CodeRateLimited || verify.CodeOf(errors.New("x")) != "" {
		t.Error("CodeOf")
	}
	if got := e.Error(); got != "rate_limited (HTTP 429, rate_limited)" {
		t.Errorf("Error() = %q", got)
	}
}

func TestResultStringAndJournal(t *testing.T) {
	r := &verify.Result{Provider: "plasgate", Verified: verify.Bool(true), LoginHint: "447700900123",
		Claims: map[string]any{"given_name": "Teak"}, ErrorDescription: "code=abc",
		Trace: []verify.Hop{{URL: "https://x"}}}
	s := r.String()
	if strings.Contains(s, "447700900123") || strings.Contains(s, "Teak") || strings.Contains(s, "abc") ||
		!strings.Contains(s, "verified=true") {
		t.Errorf("String() = %s", s)
	}
	j := r.ForJournal()
	if j.Claims != nil || r.Claims == nil || len(j.Trace) != 1 {
		t.Errorf("ForJournal: %+v", j)
	}
	b, _ := json.Marshal(&verify.Result{Verified: nil})
	if !strings.Contains(string(b), `"verified":null`) {
		t.Errorf("undecided result marshals as %s", b)
	}
	var calls []verify.Stage
	var p verify.Progress = func(e verify.Event) error {
		calls = append(calls, e.Stage)
		if e.Stage == verify.StageDevice {
			return errors.New("journal full")
		}
		return nil
	}
	if err := p.Report(verify.Event{Stage: verify.StageCreated}); err != nil {
		t.Fatal(err)
	}
	if err := p.Report(verify.Event{Stage: verify.StageDevice}); err == nil || !strings.Contains(err.Error(), "journal full") {
		t.Errorf("Report error %v", err)
	}
	if err := verify.Progress(nil).Report(verify.Event{}); err != nil {
		t.Error(err)
	}
}

func TestCertPool(t *testing.T) {
	if _, err := verify.CertPool(""); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o644)
	if _, err := verify.CertPool(bad); err == nil {
		t.Error("non-PEM ca_file accepted")
	}
	if _, err := verify.CertPool(filepath.Join(dir, "none")); err == nil {
		t.Error("missing ca_file accepted")
	}
}
