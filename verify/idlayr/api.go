package idlayr

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/simproof/simproof/verify"
)

// maxAPIBody bounds what is read of any API answer.
const maxAPIBody = 64 << 10

// maxAttempts bounds the requests of one call (token refresh and 429 waits
// included), whatever the server says.
const maxAttempts = 8

type apiResp struct {
	status int
	header http.Header
	body   []byte
}

func (r *apiResp) isJSON() bool {
	mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type"))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// call makes one authorised API request on client. A 401 fetches a new
// token once, then is provider_auth_failed; a 429 is retried after its
// Retry-After when that fits before deadline, else rate_limited.
func (p *Provider) call(ctx context.Context, client *http.Client, op, method, path string, body []byte,
	contentType, scope string, deadline time.Time) (*apiResp, error) {
	refreshed := false
	var last *apiResp
	for attempt := 0; attempt < maxAttempts; attempt++ {
		tok, err := p.tokens[scope].get(ctx)
		if err != nil {
			return nil, err
		}
		r, err := p.send(ctx, client, op, method, path, body, contentType, tok)
		if err != nil {
			return nil, err
		}
		last = r
		switch r.status {
		case http.StatusUnauthorized:
			if refreshed {
				return nil, &verify.Error{Code: verify.CodeProviderAuthFailed, HTTPStatus: r.status,
					Message: op + ": access token refused again after a refresh"}
			}
			p.tokens[scope].invalidate(tok)
			refreshed = true
			continue
		case http.StatusTooManyRequests:
			wait := retryAfter(r.header, time.Now())
			if !time.Now().Add(wait).Before(deadline) {
				return nil, &verify.Error{Code: verify.CodeRateLimited, HTTPStatus: r.status, RetryAfter: wait,
					ProviderCode: problemOf(r).token(),
					Message:      fmt.Sprintf("%s: rate limited; Retry-After %s does not fit the check's deadline", op, wait)}
			}
			if err := sleep(ctx, wait); err != nil {
				return nil, verify.TransportError(op, err, time.Now())
			}
			continue
		}
		return r, nil
	}
	return nil, &verify.Error{Code: verify.CodeRateLimited, HTTPStatus: last.status,
		Message: fmt.Sprintf("%s: still refused after %d attempts", op, maxAttempts)}
}

func (p *Provider) send(ctx context.Context, client *http.Client, op, method, path string, body []byte,
	contentType, tok string) (*apiResp, error) {
	cctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(cctx, method, p.base+path, rd)
	if err != nil {
		return nil, verify.Errorf(verify.CodeProviderError, "%s: bad request URL", op)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", p.cfg.UserAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, verify.TransportError(op, err, time.Now())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
	if err != nil {
		return nil, verify.TransportError(op, err, time.Now())
	}
	return &apiResp{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// retryAfter reads Retry-After (seconds or an HTTP date); missing or
// unreadable counts as one second.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
		return 0
	}
	return time.Second
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// problem is an RFC 9457 problem+json body as IDlayr sends it, with the
// places its stable code may be found.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	ErrorCode string `json:"error_code"`
	Code      string `json:"code"`
	Error     string `json:"error"`
}

func problemOf(r *apiResp) problem {
	var p problem
	if len(r.body) > 0 {
		_ = json.Unmarshal(r.body, &p) // anything unreadable leaves the status to decide
	}
	return p
}

// token is the problem's stable code: error_code, else code or error, else
// the fragment or last segment of its type URI.
func (p problem) token() string {
	for _, s := range []string{p.ErrorCode, p.Code, p.Error} {
		if s != "" {
			return s
		}
	}
	t := p.Type
	if i := strings.LastIndexAny(t, "#/"); i >= 0 {
		t = t[i+1:]
	}
	if t == "about:blank" {
		return ""
	}
	return t
}

// What the provider's codes mean in the catalogue. Outcome codes
// (operator_mismatch, not_mobile_ip) end the check completed, not verified.
var providerCodes = map[string]string{
	"phone_format_invalid":     verify.CodeInvalidPhoneNumber,
	"mno_not_supported":        verify.CodeUnsupportedOperator,
	"mno_redirect_unsupported": verify.CodeUnsupportedOperator,
	"ip_msisdn_mismatch":       verify.CodeOperatorMismatch,
	"not_mobile_ip":            verify.CodeNotMobileIP,
	"check_not_found":          verify.CodeProviderCheckNotFound,
	"check_expired":            verify.CodeExpired,
	"rate_limited":             verify.CodeRateLimited,
	"unauthorized":             verify.CodeProviderAuthFailed,
	"insufficient_scope":       verify.CodeProviderAuthFailed,
	"invalid_client":           verify.CodeProviderAuthFailed,
}

func isOutcome(code string) bool {
	return code == verify.CodeOperatorMismatch || code == verify.CodeNotMobileIP
}

// classify maps a non-2xx answer. It returns the outcome code of a
// completed-not-verified check, or the error that failed it. onCheck says
// the request named an existing check, where a bare 404 means that check is
// unknown (elsewhere it means a wrong base URL).
func classify(op string, r *apiResp, onCheck bool) (outcome string, err *verify.Error) {
	p := problemOf(r)
	tok := p.token()
	code, known := providerCodes[tok]
	if !known {
		switch {
		case r.status == http.StatusUnauthorized || r.status == http.StatusForbidden:
			code = verify.CodeProviderAuthFailed
		case r.status == http.StatusNotFound && onCheck:
			code = verify.CodeProviderCheckNotFound
		case r.status == http.StatusConflict:
			code = verify.CodeOperatorMismatch
		case r.status == http.StatusPreconditionFailed:
			code = verify.CodeNotMobileIP
		case r.status == http.StatusTooManyRequests:
			code = verify.CodeRateLimited
		case r.status == http.StatusNotImplemented:
			code = verify.CodeUnsupportedOperator
		default:
			code = verify.CodeProviderError
		}
	}
	if isOutcome(code) {
		return code, nil
	}
	msg := fmt.Sprintf("%s: HTTP %d", op, r.status)
	if d := detail(p); d != "" {
		msg += ": " + d
	}
	return "", &verify.Error{Code: code, Message: msg, ProviderCode: tok, HTTPStatus: r.status}
}

func detail(p problem) string {
	d := p.Detail
	if d == "" {
		d = p.Title
	}
	if len(d) > 200 {
		d = d[:200] + "…"
	}
	return verify.RedactText(d)
}
