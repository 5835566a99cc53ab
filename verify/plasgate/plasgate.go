// Package plasgate is the PlasGate IP Verification provider: the device
// fetches /ip/authenticate over the modem's pinned client (verify/redirect),
// the operator's chain ends at redirect_uri, which is never fetched: its
// code and state are read from the Location and exchanged, with X-Secret,
// on the ordinary client for the claims of the requested scopes.
package plasgate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/redirect"
)

// Defaults of Config.
const (
	DefaultBaseURL      = "https://cloudapi.plasgate.com"
	DefaultScope        = ScopePhoneVerify
	DefaultExchangePath = "/ip/ip-auth"
	DefaultCallTimeout  = 15 * time.Second
)

// The custom scopes; "ip:"-prefixed forms and openid are accepted too.
const (
	ScopePhoneVerify = "phone_verify"
	ScopeMobileID    = "mobile_id"
	ScopePhone       = "phone"
	ScopeProfile     = "profile"
)

// maxAPIBody bounds what is read of the exchange's answer.
const maxAPIBody = 64 << 10

// Config configures the provider; zero values take the documented defaults.
type Config struct {
	// BaseURL of the API (default https://cloudapi.plasgate.com).
	BaseURL string
	// PrivateKey and Secret (X-Secret) are the account's credentials; read
	// them with verify.ReadSecretFile.
	PrivateKey string
	Secret     string
	// RedirectURI is registered with PlasGate; the device step stops at it.
	RedirectURI string
	// Scope is the default scope list, space-separated (default
	// phone_verify); a Request's Scope overrides it.
	Scope string
	// ExchangePath is where the code is exchanged (default /ip/ip-auth;
	// some accounts use /ip/check-info).
	ExchangePath string
	// PrivateKeyInQuery sends private_key in the exchange's query instead
	// of its JSON body.
	PrivateKeyInQuery bool
	// IgnoreState turns off the check that the returned state is the one
	// sent (verify_state: false).
	IgnoreState bool
	// HTTPClient makes the exchange. nil: verify.NewServerClient with the
	// system roots. It must not follow redirects.
	HTTPClient *http.Client
	// CallTimeout bounds the exchange (default 15 s).
	CallTimeout time.Duration
	// Device step: hop cap, per-hop timeout, User-Agent.
	MaxHops    int
	HopTimeout time.Duration
	UserAgent  string
}

// Provider runs PlasGate IP verifications; safe for concurrent use.
type Provider struct {
	cfg    Config
	base   string
	client *http.Client
}

var _ verify.Provider = (*Provider)(nil)

// New validates cfg and returns the provider. No request is made.
func New(cfg Config) (*Provider, error) {
	if cfg.PrivateKey == "" || cfg.Secret == "" {
		return nil, fmt.Errorf("plasgate: private_key and secret are required")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("plasgate: base_url %q is not an absolute https URL", cfg.BaseURL)
	}
	if ru, err := url.Parse(cfg.RedirectURI); err != nil || ru.Host == "" || (ru.Scheme != "https" && ru.Scheme != "http") {
		return nil, fmt.Errorf("plasgate: redirect_uri %q is not an absolute http(s) URL", cfg.RedirectURI)
	}
	if cfg.Scope == "" {
		cfg.Scope = DefaultScope
	}
	if _, err := parseScope(cfg.Scope); err != nil {
		return nil, fmt.Errorf("plasgate: %w", err)
	}
	if cfg.ExchangePath == "" {
		cfg.ExchangePath = DefaultExchangePath
	}
	if !strings.HasPrefix(cfg.ExchangePath, "/") {
		return nil, fmt.Errorf("plasgate: exchange_path %q must start with /", cfg.ExchangePath)
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = redirect.DefaultUserAgent
	}
	client := cfg.HTTPClient
	if client == nil {
		roots, err := verify.CertPool("")
		if err != nil {
			return nil, fmt.Errorf("plasgate: %w", err)
		}
		client = verify.NewServerClient(roots)
	}
	return &Provider{cfg: cfg, base: strings.TrimRight(u.String(), "/"), client: client}, nil
}

// Name is "plasgate".
func (p *Provider) Name() string { return "plasgate" }

// parseScope splits a space-separated scope list and returns the custom
// scopes in it (without "ip:"); at least one is required.
func parseScope(s string) ([]string, error) {
	var custom []string
	for _, f := range strings.Fields(s) {
		switch name := strings.TrimPrefix(f, "ip:"); name {
		case ScopePhoneVerify, ScopeMobileID, ScopePhone, ScopeProfile:
			if !slices.Contains(custom, name) {
				custom = append(custom, name)
			}
		case "openid":
		default:
			return nil, fmt.Errorf("unknown scope %q", f)
		}
	}
	if len(custom) == 0 {
		return nil, fmt.Errorf("scope %q holds none of phone_verify, mobile_id, phone, profile", s)
	}
	return custom, nil
}

// Check runs one verification over req.Device.
func (p *Provider) Check(ctx context.Context, req verify.Request) (*verify.Result, error) {
	scope := req.Scope
	if scope == "" {
		scope = p.cfg.Scope
	}
	scope = strings.Join(strings.Fields(scope), " ")
	custom, err := parseScope(scope)
	if err != nil {
		return nil, verify.Errorf(verify.CodeProviderError, "plasgate: %v", err)
	}
	// phone_verify and profile verify a number; mobile_id and phone alone
	// only resolve the subscriber, so they do not decide "verified".
	decides := slices.Contains(custom, ScopePhoneVerify) || slices.Contains(custom, ScopeProfile)
	var hint string
	if req.PhoneNumber != "" || decides {
		if hint, err = verify.Digits(req.PhoneNumber); err != nil {
			return nil, err
		}
	}
	if req.Device == nil {
		return nil, verify.Errorf(verify.CodeNoBearer, "plasgate: no pinned client for the device step")
	}
	state, err := newState()
	if err != nil {
		return nil, fmt.Errorf("plasgate state: %w", err)
	}
	q := url.Values{"private_key": {p.cfg.PrivateKey}, "redirect_uri": {p.cfg.RedirectURI}, "scope": {scope}, "state": {state}}
	if hint != "" {
		q.Set("login_hint", hint)
		q.Set("phone_number", hint)
	}
	if err := req.Progress.Report(verify.Event{Provider: p.Name(), Stage: verify.StageDevice}); err != nil {
		return nil, err
	}
	dev, err := redirect.Follow(ctx, req.Device, p.base+"/ip/authenticate?"+q.Encode(), redirect.Options{
		StopAt: p.cfg.RedirectURI, Interface: req.Interface, MaxHops: p.cfg.MaxHops,
		HopTimeout: p.cfg.HopTimeout, UserAgent: p.cfg.UserAgent,
	})
	if err != nil {
		return nil, err
	}
	res := &verify.Result{Provider: p.Name(), Scope: scope, Trace: dev.Trace}
	fail := func(e *verify.Error) (*verify.Result, error) {
		e.Trace = res.Trace
		return nil, e
	}
	if !dev.Stopped {
		return fail(chainEndedElsewhere(dev))
	}
	params := dev.RedirectParams
	if s, ok := params["state"]; !p.cfg.IgnoreState && (ok || params["error"] == "") && s != state {
		return fail(verify.Errorf(verify.CodeBadRedirect, "redirect_uri came back with a state other than the one sent"))
	}
	if perr := params["error"]; perr != "" {
		desc := strings.TrimSpace(params["error_description"])
		switch perr {
		case "access_denied":
			// PlasGate's answer to a source that is not a mobile network.
			res.Verified, res.Reason, res.ErrorDescription = verify.Bool(false), verify.CodeNotMobileIP, desc
			res.ProviderErrorCode = perr
			return res, nil
		case "unauthorized_client", "invalid_client":
			return fail(&verify.Error{Code: verify.CodeProviderAuthFailed, ProviderCode: perr,
				Message: "authenticate refused: " + verify.RedactText(desc)})
		default:
			return fail(&verify.Error{Code: verify.CodeProviderError, ProviderCode: perr,
				Message: "authenticate failed: " + verify.RedactText(desc)})
		}
	}
	code := params["code"]
	if code == "" {
		return fail(verify.Errorf(verify.CodeBadRedirect, "redirect_uri came back without a code or an error"))
	}
	if err := req.Progress.Report(verify.Event{Provider: p.Name(), Stage: verify.StageCodeReceived}); err != nil {
		return nil, err
	}
	returned := params["state"]
	if returned == "" {
		returned = state
	}
	claims, err := p.exchange(ctx, code, returned)
	if err != nil {
		var e *verify.Error
		if ve, ok := err.(*verify.Error); ok {
			e = ve
		} else {
			e = &verify.Error{Code: verify.CodeProviderError, Message: verify.RedactText(err.Error()), Err: err}
		}
		return fail(e)
	}
	fill(res, claims, decides)
	return res, nil
}

// chainEndedElsewhere explains a chain that never reached redirect_uri:
// PlasGate answering the device itself (403 bad key, 500) or a lost chain.
func chainEndedElsewhere(dev *redirect.Result) *verify.Error {
	desc := ""
	if dev.IsJSON() {
		var b struct {
			ErrorDescription string `json:"error_description"`
		}
		if json.Unmarshal(dev.RawBody, &b) == nil {
			desc = ": " + verify.RedactText(strings.TrimSpace(b.ErrorDescription))
		}
	}
	e := &verify.Error{HTTPStatus: dev.FinalStatus}
	switch {
	case dev.FinalStatus == http.StatusForbidden:
		e.Code, e.Message = verify.CodeProviderAuthFailed, "authenticate refused (check private_key)"+desc
	case dev.FinalStatus >= 500:
		e.Code, e.Message = verify.CodeProviderError, "authenticate failed"+desc
	default:
		e.Code = verify.CodeBadRedirect
		e.Message = fmt.Sprintf("chain ended at %s without reaching redirect_uri%s", dev.FinalURL, desc)
	}
	return e
}

func newState() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// exchange redeems the code for the claims.
func (p *Provider) exchange(ctx context.Context, code, state string) (map[string]any, error) {
	body := map[string]string{"response_type": "code", "state": state, "redirect_uri": p.cfg.RedirectURI, "code": code}
	target := p.base + p.cfg.ExchangePath
	if p.cfg.PrivateKeyInQuery {
		target += "?" + url.Values{"private_key": {p.cfg.PrivateKey}}.Encode()
	} else {
		body["private_key"] = p.cfg.PrivateKey
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, target, bytes.NewReader(b))
	if err != nil {
		return nil, verify.Errorf(verify.CodeProviderError, "exchange: bad URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Secret", p.cfg.Secret)
	req.Header.Set("User-Agent", p.cfg.UserAgent)
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, verify.TransportError("exchange", err, time.Now())
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
	if err != nil {
		return nil, verify.TransportError("exchange", err, time.Now())
	}
	var m map[string]any
	jerr := json.Unmarshal(raw, &m)
	if resp.StatusCode != http.StatusOK {
		desc, _ := m["error_description"].(string)
		e := &verify.Error{HTTPStatus: resp.StatusCode, Code: verify.CodeProviderError,
			Message: "exchange: HTTP " + fmt.Sprint(resp.StatusCode)}
		if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized {
			e.Code, e.Message = verify.CodeProviderAuthFailed, "exchange refused (check private_key and X-Secret)"
		}
		if d := strings.TrimSpace(desc); d != "" {
			e.Message += ": " + verify.RedactText(d)
		}
		return nil, e
	}
	if jerr != nil || m == nil {
		return nil, &verify.Error{Code: verify.CodeProviderError, HTTPStatus: resp.StatusCode, Message: "exchange: answer is not a JSON object"}
	}
	return m, nil
}

// known claims get fields of their own; every other claim (profile's KYC
// data ...) goes to Result.Claims.
var known = map[string]bool{
	"status": true, "phone_number_verified": true, "error_description": true, "login_hint": true,
	"mobile_id": true, "sub": true, "sid": true, "phone_number": true,
}

// fill sets the result from the exchange's claims. Verified is decided only
// for phone_verify/profile: status success and phone_number_verified true
// (a "true"/"false" string as the API sends it, or a boolean).
func fill(res *verify.Result, m map[string]any, decides bool) {
	str := func(k string) string {
		if s, ok := m[k].(string); ok {
			return strings.TrimSpace(s)
		}
		return ""
	}
	res.ProviderStatus = str("status")
	res.ErrorDescription = str("error_description")
	res.LoginHint, res.MobileID, res.Sub, res.SID, res.PhoneNumber = str("login_hint"), str("mobile_id"), str("sub"), str("sid"), str("phone_number")
	switch v := m["phone_number_verified"].(type) {
	case bool:
		res.PhoneNumberVerified = verify.Bool(v)
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			res.PhoneNumberVerified = verify.Bool(true)
		case "false":
			res.PhoneNumberVerified = verify.Bool(false)
		}
	}
	for k, v := range m {
		if !known[k] {
			if res.Claims == nil {
				res.Claims = map[string]any{}
			}
			res.Claims[k] = v
		}
	}
	if decides {
		ok := strings.EqualFold(res.ProviderStatus, "success") && res.PhoneNumberVerified != nil && *res.PhoneNumberVerified
		res.Verified = verify.Bool(ok)
	}
}
