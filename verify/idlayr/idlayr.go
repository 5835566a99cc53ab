// Package idlayr is the IDlayr PhoneCheck provider (API v0.1 and v0.2): an
// OAuth2 client-credentials token (cached, refreshed before expiry, refreshed
// once when refused), the check created on the ordinary client, the check URL
// fetched over the modem's pinned client by verify/redirect, and the result
// polled (v0.1) or redeemed with the code the device step returned (v0.2).
// An optional coverage preflight asks, over the pinned client, whether the
// modem's operator supports PhoneCheck.
package idlayr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/redirect"
)

// Versions of the PhoneCheck API.
const (
	V01 = "v0.1"
	V02 = "v0.2"
)

// Check statuses.
const (
	StatusAccepted  = "ACCEPTED"
	StatusPending   = "PENDING"
	StatusCompleted = "COMPLETED"
	StatusExpired   = "EXPIRED"
	StatusError     = "ERROR"
)

// Defaults of Config.
const (
	DefaultTTLCap          = 120 * time.Second
	DefaultPollInterval    = 500 * time.Millisecond
	DefaultMaxPollInterval = 4 * time.Second
	DefaultServerRetries   = 3
	DefaultCallTimeout     = 15 * time.Second
)

// Config configures the provider; zero values take the documented defaults.
type Config struct {
	// Credentials of the IDlayr project (LoadCredentials,
	// CredentialsFromConfig).
	Credentials Credentials
	// BaseURL overrides https://{data_residency}.api.idlayr.com (a sandbox,
	// a proxy, the emulator).
	BaseURL string
	// Version is the default API version, V01 (default) or V02; a
	// Request's Version overrides it.
	Version string
	// RedirectURL (v0.2, optional) is sent at creation; the device step then
	// stops at it without fetching it and reads check_id and code from it.
	RedirectURL string
	// HTTPClient makes the server-side calls (token, create, poll, PATCH).
	// nil: verify.NewServerClient with the system roots. It must not follow
	// redirects.
	HTTPClient *http.Client
	// TTLCap caps how long a check is polled, whatever its own ttl says
	// (default 120 s).
	TTLCap time.Duration
	// PollInterval is the first wait between two GETs of a pending check,
	// doubling up to MaxPollInterval (defaults 0.5 s, 4 s).
	PollInterval, MaxPollInterval time.Duration
	// ServerRetries bounds consecutive 5xx or transport failures while
	// polling (default 3); the check's ttl bounds them too.
	ServerRetries int
	// CallTimeout bounds each server-side request (default 15 s).
	CallTimeout time.Duration
	// Device step: hop cap, per-hop timeout, User-Agent (verify/redirect
	// defaults).
	MaxHops    int
	HopTimeout time.Duration
	UserAgent  string
	// Now is the clock tokens are judged by (default time.Now).
	Now func() time.Time
	// Preflight asks the coverage API over the device's bearer before
	// creating a check: an address IDlayr does not see as mobile ends the
	// check as not_mobile_ip, an operator without PhoneCheck as
	// unsupported_operator, and no check is created (or paid for).
	Preflight bool
}

// Provider runs IDlayr PhoneChecks. It is safe for concurrent use: checks on
// different modems share its token.
type Provider struct {
	cfg    Config
	base   string // no trailing slash
	client *http.Client
	tokens map[string]*tokenCache
}

var _ verify.Provider = (*Provider)(nil)
var _ verify.Resumer = (*Provider)(nil)

// New validates cfg and returns the provider. No request is made.
func New(cfg Config) (*Provider, error) {
	if cfg.Credentials.ClientID == "" || cfg.Credentials.ClientSecret == "" {
		return nil, fmt.Errorf("idlayr: client_id and client_secret are required")
	}
	base := cfg.BaseURL
	if base == "" {
		dr := strings.ToLower(strings.TrimSpace(cfg.Credentials.DataResidency))
		if dr == "" {
			return nil, fmt.Errorf("idlayr: no base_url and no data_residency to derive it from")
		}
		base = "https://" + dr + ".api.idlayr.com"
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("idlayr: base_url %q is not an absolute https URL", base)
	}
	switch cfg.Version {
	case "":
		cfg.Version = V01
	case V01, V02:
	default:
		return nil, fmt.Errorf("idlayr: version %q is not %s or %s", cfg.Version, V01, V02)
	}
	if cfg.RedirectURL != "" {
		if ru, err := url.Parse(cfg.RedirectURL); err != nil || ru.Host == "" {
			return nil, fmt.Errorf("idlayr: redirect_url %q is not an absolute URL", cfg.RedirectURL)
		}
	}
	if cfg.TTLCap <= 0 {
		cfg.TTLCap = DefaultTTLCap
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxPollInterval < cfg.PollInterval {
		cfg.MaxPollInterval = max(DefaultMaxPollInterval, cfg.PollInterval)
	}
	if cfg.ServerRetries <= 0 {
		cfg.ServerRetries = DefaultServerRetries
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = redirect.DefaultUserAgent
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client := cfg.HTTPClient
	if client == nil {
		roots, err := verify.CertPool("")
		if err != nil {
			return nil, fmt.Errorf("idlayr: %w", err)
		}
		client = verify.NewServerClient(roots)
	}
	p := &Provider{cfg: cfg, base: strings.TrimRight(u.String(), "/"), client: client, tokens: map[string]*tokenCache{}}
	for _, scope := range []string{ScopePhoneCheck, ScopeCoverage} {
		p.tokens[scope] = newTokenCache(p.base+"/oauth2/v1/token", scope, cfg.Credentials, client, cfg.Now, cfg.CallTimeout)
	}
	return p, nil
}

// Name is "idlayr".
func (p *Provider) Name() string { return "idlayr" }

// check is the PhoneCheck resource, both versions.
type check struct {
	CheckID   string `json:"check_id"`
	Status    string `json:"status"`
	Match     *bool  `json:"match"`
	TTL       int    `json:"ttl"`
	CreatedAt string `json:"created_at"`
	ErrorCode string `json:"error_code"`
	Links     struct {
		CheckURL struct {
			Href string `json:"href"`
		} `json:"check_url"`
	} `json:"_links"`
}

func (c *check) final() bool {
	return c.Status == StatusCompleted || c.Status == StatusExpired || c.Status == StatusError
}

// Check runs one PhoneCheck for req.PhoneNumber over req.Device.
func (p *Provider) Check(ctx context.Context, req verify.Request) (*verify.Result, error) {
	version := req.Version
	if version == "" {
		version = p.cfg.Version
	}
	if version != V01 && version != V02 {
		return nil, verify.Errorf(verify.CodeProviderError, "idlayr: unknown version %q", version)
	}
	phone, err := verify.Digits(req.PhoneNumber)
	if err != nil {
		return nil, err
	}
	if req.Device == nil {
		return nil, verify.Errorf(verify.CodeNoBearer, "idlayr: no pinned client for the device step")
	}

	res := &verify.Result{Provider: p.Name()}
	if p.cfg.Preflight {
		cov, err := p.Coverage(ctx, req.Device)
		if verify.CodeOf(err) == verify.CodeNotMobileIP {
			res.Verified, res.Reason = verify.Bool(false), verify.CodeNotMobileIP
			return res, nil
		}
		if err != nil {
			return nil, err
		}
		res.NetworkID, res.NetworkName = cov.NetworkID, cov.NetworkName
		if !cov.PhoneCheck {
			return nil, &verify.Error{Code: verify.CodeUnsupportedOperator,
				Message: fmt.Sprintf("coverage: %s (%s) does not support PhoneCheck", cov.NetworkName, cov.NetworkID)}
		}
	}
	created, deadline, err := p.create(ctx, version, phone)
	if rf, ok := err.(*refusal); ok {
		// The API may judge the number at creation already (409, 412).
		return p.endWith(res, rf.r, "create check", false)
	}
	if err != nil {
		return nil, err
	}
	res.CheckID, res.ProviderStatus = created.CheckID, created.Status
	if err := req.Progress.Report(verify.Event{Provider: p.Name(), Stage: verify.StageCreated, CheckID: created.CheckID}); err != nil {
		return nil, err
	}
	if err := req.Progress.Report(verify.Event{Provider: p.Name(), Stage: verify.StageDevice, CheckID: created.CheckID}); err != nil {
		return nil, err
	}
	opts := redirect.Options{MaxHops: p.cfg.MaxHops, HopTimeout: p.cfg.HopTimeout, UserAgent: p.cfg.UserAgent,
		Interface: req.Interface}
	if version == V02 {
		opts.StopAt = p.cfg.RedirectURL
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	dev, err := redirect.Follow(dctx, req.Device, created.Links.CheckURL.Href, opts)
	cancel()
	if err != nil {
		return nil, withCheck(err, created.CheckID)
	}
	res.Trace = dev.Trace

	if version == V01 {
		// IDlayr itself may refuse the device (412, 409, 501) at the check
		// URL; anything else the chain ends in is the operator's page and the
		// API's result decides.
		if dev.FinalStatus >= 400 && dev.IsJSON() {
			r := &apiResp{status: dev.FinalStatus, header: http.Header{"Content-Type": {dev.ContentType}}, body: dev.RawBody}
			if _, known := providerCodes[problemOf(r).token()]; known || strings.Contains(dev.ContentType, "problem+json") {
				return p.endWith(res, r, "device step", true)
			}
		}
		if err := req.Progress.Report(verify.Event{Provider: p.Name(), Stage: verify.StageResult, CheckID: created.CheckID}); err != nil {
			return nil, withTrace(err, res.Trace)
		}
		c, err := p.poll(ctx, V01, created.CheckID, deadline, nil)
		if err != nil {
			return nil, withTrace(err, res.Trace)
		}
		return p.final(res, c)
	}
	return p.finishV02(ctx, req, res, dev, deadline)
}

// refusal is a non-2xx answer to create, for Check to classify.
type refusal struct{ r *apiResp }

func (r *refusal) Error() string { return fmt.Sprintf("create check: HTTP %d", r.r.status) }

// create makes the check and returns it with the time polling must end.
func (p *Provider) create(ctx context.Context, version, phone string) (*check, time.Time, error) {
	body := map[string]string{"phone_number": phone}
	if version == V02 && p.cfg.RedirectURL != "" {
		body["redirect_url"] = p.cfg.RedirectURL
	}
	b, _ := json.Marshal(body)
	waitLimit := time.Now().Add(p.cfg.TTLCap)
	if d, ok := ctx.Deadline(); ok && d.Before(waitLimit) {
		waitLimit = d
	}
	r, err := p.call(ctx, p.client, "create check", http.MethodPost, "/phone_check/"+version+"/checks", b,
		"application/json", ScopePhoneCheck, waitLimit)
	if err != nil {
		return nil, time.Time{}, err
	}
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		return nil, time.Time{}, &refusal{r}
	}
	var c check
	if err := json.Unmarshal(r.body, &c); err != nil || c.CheckID == "" {
		return nil, time.Time{}, verify.Errorf(verify.CodeProviderError, "create check: answer without check_id")
	}
	if _, err := url.Parse(c.Links.CheckURL.Href); err != nil || c.Links.CheckURL.Href == "" {
		return nil, time.Time{}, &verify.Error{Code: verify.CodeProviderError, ProviderCode: c.CheckID,
			Message: "create check " + c.CheckID + ": answer without _links.check_url"}
	}
	return &c, p.deadline(time.Now(), c.TTL), nil
}

// deadline is from + the check's ttl, capped by TTLCap.
func (p *Provider) deadline(from time.Time, ttlSeconds int) time.Time {
	ttl := time.Duration(ttlSeconds) * time.Second
	if ttl <= 0 || ttl > p.cfg.TTLCap {
		ttl = p.cfg.TTLCap
	}
	return from.Add(ttl)
}

// endWith turns a refusal into the check's end: an outcome (completed, not
// verified) or the error.
func (p *Provider) endWith(res *verify.Result, r *apiResp, op string, onCheck bool) (*verify.Result, error) {
	outcome, e := classify(op, r, onCheck)
	if e != nil {
		e.Trace = res.Trace
		return nil, withCheck(e, res.CheckID)
	}
	res.Verified = verify.Bool(false)
	res.Reason = outcome
	res.ProviderErrorCode = problemOf(r).token()
	return res, nil
}

// final turns a final check resource into the result.
func (p *Provider) final(res *verify.Result, c *check) (*verify.Result, error) {
	res.ProviderStatus = c.Status
	res.Match = c.Match
	switch c.Status {
	case StatusCompleted:
		// Verified means COMPLETED and match true, nothing less.
		res.Verified = verify.Bool(c.Match != nil && *c.Match)
		return res, nil
	case StatusExpired:
		return nil, &verify.Error{Code: verify.CodeExpired, ProviderCode: c.CheckID, Trace: res.Trace,
			Message: "check " + c.CheckID + " EXPIRED before the operator confirmed it"}
	default: // ERROR
		code, known := providerCodes[c.ErrorCode]
		if known && isOutcome(code) {
			res.Verified = verify.Bool(false)
			res.Reason = code
			res.ProviderErrorCode = c.ErrorCode
			return res, nil
		}
		if !known || code == verify.CodeExpired {
			code = verify.CodeProviderError
		}
		return nil, &verify.Error{Code: code, ProviderCode: c.ErrorCode, Trace: res.Trace,
			Message: "check " + c.CheckID + " ended in ERROR"}
	}
}

// poll GETs the check until it is final or deadline passes: waits double
// from PollInterval to MaxPollInterval; 429 waits out Retry-After within the
// deadline; 5xx and transport failures are retried ServerRetries times in a
// row. first, when set, is a resource already fetched.
func (p *Provider) poll(ctx context.Context, version, id string, deadline time.Time, first *check) (*check, error) {
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	interval := p.cfg.PollInterval
	failures := 0
	c := first
	for {
		if c == nil {
			var err error
			c, err = p.get(ctx, version, id, deadline)
			if err != nil {
				if !retryable(err) || failures >= p.cfg.ServerRetries || !time.Now().Add(interval).Before(deadline) {
					return nil, withCheck(err, id)
				}
				failures++
			} else {
				failures = 0
			}
		}
		if c != nil {
			if c.final() {
				return c, nil
			}
			switch c.Status {
			case StatusAccepted, StatusPending:
			default:
				return nil, &verify.Error{Code: verify.CodeProviderError, ProviderCode: c.Status,
					Message: "check " + id + ": unknown status"}
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			status := "unanswered"
			if c != nil {
				status = c.Status
			}
			return nil, &verify.Error{Code: verify.CodeExpired, ProviderCode: id,
				Message: fmt.Sprintf("check %s still %s when its ttl ran out", id, status)}
		}
		if err := sleep(ctx, min(interval, left)); err != nil {
			return nil, withCheck(verify.TransportError("poll", err, time.Now()), id)
		}
		interval = min(interval*2, p.cfg.MaxPollInterval)
		c = nil
	}
}

// retryable: the server or the path to it failed, not the request.
func retryable(err error) bool {
	var e *verify.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case verify.CodeProviderError:
		return e.HTTPStatus >= 500
	case verify.CodeConnectFailed, verify.CodeConnectTimeout:
		return true
	}
	return false
}

func (p *Provider) get(ctx context.Context, version, id string, deadline time.Time) (*check, error) {
	r, err := p.call(ctx, p.client, "get check", http.MethodGet, "/phone_check/"+version+"/checks/"+url.PathEscape(id),
		nil, "", ScopePhoneCheck, deadline)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		outcome, e := classify("get check "+id, r, true)
		if e == nil {
			e = &verify.Error{Code: outcome, HTTPStatus: r.status, Message: "get check " + id}
		}
		return nil, e
	}
	var c check
	if err := json.Unmarshal(r.body, &c); err != nil || c.Status == "" {
		return nil, &verify.Error{Code: verify.CodeProviderError, HTTPStatus: r.status, Message: "get check " + id + ": unreadable answer"}
	}
	if c.CheckID == "" {
		c.CheckID = id
	}
	return &c, nil
}

// Resume finishes a v0.1 check a previous run created: it polls it until
// final or until its ttl (from its created_at, capped by TTLCap) has passed.
// The device step is not repeated.
func (p *Provider) Resume(ctx context.Context, id string) (*verify.Result, error) {
	if id == "" {
		return nil, verify.Errorf(verify.CodeProviderCheckNotFound, "idlayr: no check id to resume")
	}
	c, err := p.get(ctx, V01, id, time.Now().Add(p.cfg.TTLCap))
	if err != nil {
		return nil, withCheck(err, id)
	}
	start := time.Now()
	if t, err := time.Parse(time.RFC3339, c.CreatedAt); err == nil {
		start = t
	}
	c, err = p.poll(ctx, V01, id, p.deadline(start, c.TTL), c)
	if err != nil {
		return nil, err
	}
	return p.final(&verify.Result{Provider: p.Name(), CheckID: id}, c)
}

// finishV02 reads check_id and code from how the device step ended and
// redeems the code.
func (p *Provider) finishV02(ctx context.Context, req verify.Request, res *verify.Result, dev *redirect.Result, deadline time.Time) (*verify.Result, error) {
	var id, code, perr, pdesc string
	switch {
	case dev.Stopped:
		id, code = dev.RedirectParams["check_id"], dev.RedirectParams["code"]
		perr, pdesc = dev.RedirectParams["error"], dev.RedirectParams["error_description"]
	case dev.IsJSON():
		var b struct {
			CheckID          string `json:"check_id"`
			Code             string `json:"code"`
			Error            string `json:"error"`
			ErrorDescription string `json:"error_description"`
		}
		_ = json.Unmarshal(dev.RawBody, &b) // a problem body has none of these but its status
		id, code, perr, pdesc = b.CheckID, b.Code, b.Error, b.ErrorDescription
		if code == "" && perr == "" && dev.FinalStatus >= 400 {
			r := &apiResp{status: dev.FinalStatus, header: http.Header{"Content-Type": {dev.ContentType}}, body: dev.RawBody}
			return p.endWith(res, r, "device step", true)
		}
	}
	if perr != "" {
		r := &apiResp{status: 0, body: mustJSON(map[string]string{"error_code": perr, "detail": pdesc})}
		outcome, e := classify("device step", r, true)
		if e != nil {
			e.Trace = res.Trace
			return nil, withCheck(e, res.CheckID)
		}
		res.Verified, res.Reason, res.ProviderErrorCode = verify.Bool(false), outcome, perr
		return res, nil
	}
	if code == "" {
		return nil, &verify.Error{Code: verify.CodeBadRedirect, Trace: res.Trace, ProviderCode: res.CheckID,
			Message: fmt.Sprintf("device step ended at %s (HTTP %d) without a code", dev.FinalURL, dev.FinalStatus)}
	}
	if id != "" && id != res.CheckID {
		return nil, &verify.Error{Code: verify.CodeBadRedirect, Trace: res.Trace, ProviderCode: res.CheckID,
			Message: "device step returned the code of another check"}
	}
	if err := req.Progress.Report(verify.Event{Provider: p.Name(), Stage: verify.StageCodeReceived, CheckID: res.CheckID}); err != nil {
		return nil, withTrace(err, res.Trace)
	}
	patch := mustJSON([]map[string]string{{"op": "add", "path": "/code", "value": code}})
	r, err := p.call(ctx, p.client, "redeem code", http.MethodPatch, "/phone_check/v0.2/checks/"+url.PathEscape(res.CheckID),
		patch, "application/json-patch+json", ScopePhoneCheck, deadline)
	if err != nil {
		return nil, withTrace(withCheck(err, res.CheckID), res.Trace)
	}
	if r.status != http.StatusOK {
		return p.endWith(res, r, "redeem code", true)
	}
	var c check
	if err := json.Unmarshal(r.body, &c); err != nil || c.Status == "" {
		return nil, &verify.Error{Code: verify.CodeProviderError, HTTPStatus: r.status, Trace: res.Trace,
			Message: "redeem code: unreadable answer"}
	}
	if !c.final() {
		pc, err := p.poll(ctx, V02, res.CheckID, deadline, &c)
		if err != nil {
			return nil, withTrace(err, res.Trace)
		}
		c = *pc
	}
	return p.final(res, &c)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps and slices of strings reach here
	}
	return b
}

// withCheck names the provider's check in an error that lacks it, so a
// failed check can still be looked up with IDlayr.
func withCheck(err error, id string) error {
	var e *verify.Error
	if errors.As(err, &e) && id != "" && !strings.Contains(e.Message, id) {
		e.Message = "check " + id + ": " + e.Message
	}
	return err
}

func withTrace(err error, trace []verify.Hop) error {
	var e *verify.Error
	if errors.As(err, &e) && e.Trace == nil {
		e.Trace = trace
	}
	return err
}
