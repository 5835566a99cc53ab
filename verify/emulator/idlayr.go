package emulator

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// IDlayr check statuses.
const (
	StatusAccepted  = "ACCEPTED"
	StatusPending   = "PENDING"
	StatusCompleted = "COMPLETED"
	StatusExpired   = "EXPIRED"
	StatusError     = "ERROR"
)

// Token scopes the IDlayr token endpoint grants.
const (
	ScopePhoneCheck = "phone_check"
	ScopeCoverage   = "coverage"
)

var e164Digits = regexp.MustCompile(`^[1-9][0-9]{6,14}$`)

type token struct {
	scopes  []string
	expires time.Time
}

type check struct {
	id, version, phone, redirectURL, referenceID string
	base                                         string // IDlayr base URL at creation
	created                                      time.Time
	ttl                                          time.Duration
	status                                       string
	errorCode, errorDesc                         string
	deviceStarted, deviceDone                    bool
	resultReady                                  bool // v0.1: match known and not withheld by Expire
	match                                        bool
	never                                        bool   // Expire: never completes
	code                                         string // v0.2
	codeUsed                                     bool
	polls, pendingServed                         int
}

func (c *check) final() bool {
	return c.status == StatusCompleted || c.status == StatusExpired || c.status == StatusError
}

// CheckView is a test's read-only view of an IDlayr check.
type CheckView struct {
	ID, Version, PhoneNumber, Status, ErrorCode string
	Match                                       bool
	DeviceStarted, DeviceDone                   bool
	Polls                                       int
}

// Check returns the check with id, after applying expiry.
func (e *Emulator) Check(id string) (CheckView, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.checks[id]
	if !ok {
		return CheckView{}, false
	}
	e.expireLocked(c)
	return CheckView{
		ID: c.id, Version: c.version, PhoneNumber: c.phone, Status: c.status, ErrorCode: c.errorCode,
		Match: c.match, DeviceStarted: c.deviceStarted, DeviceDone: c.deviceDone, Polls: c.polls,
	}, true
}

// RevokeTokens invalidates every access token issued so far, so the next API
// call answers 401 (a token the provider dropped before its expiry).
func (e *Emulator) RevokeTokens() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tokens = map[string]*token{}
}

func (e *Emulator) serveIDlayr(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/oauth2/v1/token":
		if r.Method != http.MethodPost {
			methodNotAllowed(w, "POST")
			return
		}
		e.token(w, r)
	case p == "/coverage/v0.1/device_ip" || p == "/public/coverage/v0.1/device_ip":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		e.coverage(w, r)
	case strings.HasPrefix(p, "/phone_check/"):
		segs := strings.Split(strings.TrimPrefix(p, "/phone_check/"), "/")
		if len(segs) < 2 || (segs[0] != "v0.1" && segs[0] != "v0.2") || segs[1] != "checks" || len(segs) > 4 {
			writeProblem(w, http.StatusNotFound, CodeNotFound, "no such resource")
			return
		}
		v := segs[0]
		switch {
		case len(segs) == 2:
			if r.Method != http.MethodPost {
				methodNotAllowed(w, "POST")
				return
			}
			e.createCheck(w, r, v)
		case len(segs) == 3 && r.Method == http.MethodGet:
			e.getCheck(w, r, v, segs[2])
		case len(segs) == 3 && r.Method == http.MethodPatch && v == "v0.2":
			e.patchCheck(w, r, segs[2])
		case len(segs) == 3:
			if v == "v0.2" {
				methodNotAllowed(w, "GET, PATCH")
			} else {
				methodNotAllowed(w, "GET")
			}
		case segs[3] == "redirect" && r.Method == http.MethodGet:
			e.checkURL(w, r, v, segs[2])
		case segs[3] == "complete" && r.Method == http.MethodGet:
			e.completeCheck(w, r, v, segs[2])
		case segs[3] == "redirect" || segs[3] == "complete":
			methodNotAllowed(w, "GET")
		default:
			writeProblem(w, http.StatusNotFound, CodeNotFound, "no such resource")
		}
	default:
		writeProblem(w, http.StatusNotFound, CodeNotFound, "no such resource")
	}
}

// tokenProblem is an OAuth endpoint error: problem+json carrying RFC 6749's
// error fields too, so OAuth client libraries report it properly.
func tokenProblem(w http.ResponseWriter, status int, oauthErr, detail string) {
	code := oauthErr
	if status == http.StatusUnauthorized {
		code = CodeUnauthorized
		w.Header().Set("WWW-Authenticate", `Basic realm="idlayr"`)
	}
	writeProblemBody(w, Problem{
		Type: ProblemTypeBase + code, Title: http.StatusText(status), Status: status, Detail: detail,
		ErrorCode: code, Error: oauthErr, ErrorDescription: detail,
	})
}

func (e *Emulator) token(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		tokenProblem(w, http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
		return
	}
	if mediaType(r) != "application/x-www-form-urlencoded" {
		tokenProblem(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		tokenProblem(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	note(r).bodyKeys = sortedKeys(form)
	kind, ok := e.clientAuth(r, form)
	note(r).authKind = kind
	if !ok {
		tokenProblem(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if form.Get("grant_type") != "client_credentials" {
		tokenProblem(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	}
	scopes := strings.Fields(form.Get("scope"))
	if len(scopes) == 0 {
		scopes = []string{ScopePhoneCheck}
	}
	for _, s := range scopes {
		if s != ScopePhoneCheck && s != ScopeCoverage {
			tokenProblem(w, http.StatusBadRequest, "invalid_scope", "unknown scope "+s)
			return
		}
	}
	tok := randomToken()
	e.mu.Lock()
	now := e.now()
	for k, t := range e.tokens {
		if !now.Before(t.expires) {
			delete(e.tokens, k)
		}
	}
	e.tokens[tok] = &token{scopes: scopes, expires: now.Add(e.cfg.TokenTTL)}
	e.stats.TokensIssued++
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"expires_in":   int(e.cfg.TokenTTL / time.Second),
		"token_type":   "bearer",
		"scope":        strings.Join(scopes, " "),
	})
}

// clientAuth accepts HTTP Basic with the seed's raw base64 of id:secret, the
// RFC 6749 §2.3.1 form-escaped variant, or client_id/client_secret in the
// form body. kind says which one was used.
func (e *Emulator) clientAuth(r *http.Request, form url.Values) (kind string, ok bool) {
	id, secret := []byte(e.cfg.ClientID), []byte(e.cfg.ClientSecret)
	eq := func(gotID, gotSecret string) bool {
		// Both compared in full, so timing does not tell which one failed.
		a := subtle.ConstantTimeCompare([]byte(gotID), id)
		b := subtle.ConstantTimeCompare([]byte(gotSecret), secret)
		return a&b == 1
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, cred, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Basic") {
			return "unsupported", false
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			return "basic", false
		}
		u, p, found := strings.Cut(string(raw), ":")
		if !found {
			return "basic", false
		}
		if eq(u, p) {
			return "basic", true
		}
		uu, err1 := url.QueryUnescape(u)
		pu, err2 := url.QueryUnescape(p)
		if err1 == nil && err2 == nil && eq(uu, pu) {
			return "basic-form-escaped", true
		}
		return "basic", false
	}
	if form.Has("client_id") {
		return "client_secret_post", eq(form.Get("client_id"), form.Get("client_secret"))
	}
	return "", false
}

// bearer checks the access token and scope, answering 401/403 itself.
func (e *Emulator) bearer(w http.ResponseWriter, r *http.Request, scope string) bool {
	note(r).authKind = "bearer"
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="idlayr"`)
		writeProblem(w, http.StatusUnauthorized, CodeUnauthorized, "missing bearer token")
		return false
	}
	e.mu.Lock()
	t, ok := e.tokens[strings.TrimSpace(tok)]
	valid := ok && e.now().Before(t.expires)
	scoped := valid && slices.Contains(t.scopes, scope)
	e.mu.Unlock()
	if !valid {
		w.Header().Set("WWW-Authenticate", `Bearer realm="idlayr", error="invalid_token"`)
		writeProblem(w, http.StatusUnauthorized, CodeUnauthorized, "access token unknown or expired")
		return false
	}
	if !scoped {
		w.Header().Set("WWW-Authenticate", `Bearer realm="idlayr", error="insufficient_scope", scope="`+scope+`"`)
		writeProblem(w, http.StatusForbidden, CodeInsufficientScope, "access token lacks scope "+scope)
		return false
	}
	return true
}

type link struct {
	Href string `json:"href"`
}

type checkLinks struct {
	Self     link `json:"self"`
	CheckURL link `json:"check_url"`
}

type checkJSON struct {
	CheckID          string     `json:"check_id"`
	Status           string     `json:"status"`
	Match            *bool      `json:"match,omitempty"`
	ChargeAmount     int        `json:"charge_amount"`
	ChargeCurrency   string     `json:"charge_currency"`
	CreatedAt        string     `json:"created_at"`
	TTL              int        `json:"ttl"`
	ReferenceID      string     `json:"reference_id,omitempty"`
	ErrorCode        string     `json:"error_code,omitempty"`
	ErrorDescription string     `json:"error_description,omitempty"`
	Links            checkLinks `json:"_links"`
	SnapshotBalance  *int       `json:"snapshot_balance,omitempty"`
}

func (c *check) json() checkJSON {
	self := c.base + "/phone_check/" + c.version + "/checks/" + c.id
	j := checkJSON{
		CheckID:          c.id,
		Status:           c.status,
		ChargeAmount:     1,
		ChargeCurrency:   "API",
		CreatedAt:        c.created.UTC().Format(time.RFC3339),
		TTL:              int((c.ttl + time.Second - 1) / time.Second),
		ReferenceID:      c.referenceID,
		ErrorCode:        c.errorCode,
		ErrorDescription: c.errorDesc,
		Links:            checkLinks{Self: link{self}, CheckURL: link{self + "/redirect"}},
	}
	if c.status == StatusCompleted {
		m := c.match
		j.Match = &m
	}
	return j
}

func (e *Emulator) createCheck(w http.ResponseWriter, r *http.Request, version string) {
	if !e.bearer(w, r, ScopePhoneCheck) {
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		writeProblem(w, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body over 64 KiB")
		return
	}
	note(r).bodyKeys = jsonKeys(body)
	if mediaType(r) != "application/json" {
		writeProblem(w, http.StatusUnsupportedMediaType, CodeBadRequest, "Content-Type must be application/json")
		return
	}
	var req struct {
		PhoneNumber string `json:"phone_number"`
		RedirectURL string `json:"redirect_url"`
		ReferenceID string `json:"reference_id"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeProblem(w, http.StatusBadRequest, CodeBadRequest, "malformed JSON body")
		return
	}
	if !e164Digits.MatchString(req.PhoneNumber) {
		writeProblem(w, http.StatusBadRequest, CodePhoneFormatInvalid, "phone_number must be E.164 digits without '+'")
		return
	}
	if version == "v0.2" && req.RedirectURL != "" {
		u, err := url.Parse(req.RedirectURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			writeProblem(w, http.StatusBadRequest, CodeRedirectURLInvalid, "redirect_url must be an absolute http(s) URL")
			return
		}
	} else {
		req.RedirectURL = ""
	}
	e.mu.Lock()
	f := e.faultsLocked(req.PhoneNumber, true)
	if f.CreateRateLimit > 0 {
		e.createSeen[req.PhoneNumber]++
		if e.createSeen[req.PhoneNumber] <= f.CreateRateLimit {
			e.mu.Unlock()
			writeRetryAfter(w, retryAfter(f))
			writeProblem(w, http.StatusTooManyRequests, CodeRateLimited, "too many requests")
			return
		}
	}
	if f.MNONotSupported {
		e.mu.Unlock()
		writeProblem(w, http.StatusBadRequest, CodeMNONotSupported, "the mobile network operator of this number is not supported")
		return
	}
	now := e.now()
	if len(e.checks) > 10000 {
		for id, c := range e.checks {
			if now.Sub(c.created) > time.Hour {
				delete(e.checks, id)
			}
		}
	}
	ttl := e.cfg.CheckTTL
	if f.TTL > 0 {
		ttl = f.TTL
	}
	c := &check{
		id: uuid4(), version: version, phone: req.PhoneNumber, redirectURL: req.RedirectURL,
		referenceID: req.ReferenceID, base: e.base[RoleIDlayr], created: now, ttl: ttl, status: StatusAccepted,
	}
	e.checks[c.id] = c
	e.stats.ChecksCreated++
	j := c.json()
	balance := 1000 - e.stats.ChecksCreated
	j.SnapshotBalance = &balance
	e.mu.Unlock()
	w.Header().Set("Location", j.Links.Self.Href)
	writeJSON(w, http.StatusCreated, j)
}

func retryAfter(f Faults) time.Duration {
	if f.RetryAfter > 0 {
		return f.RetryAfter
	}
	return time.Second
}

// expireLocked applies the check's ttl: one that has no result by then is
// EXPIRED. Callers hold e.mu.
func (e *Emulator) expireLocked(c *check) {
	if c.final() || c.resultReady {
		return
	}
	if !e.now().Before(c.created.Add(c.ttl)) {
		c.status = StatusExpired
	}
}

func (e *Emulator) getCheck(w http.ResponseWriter, r *http.Request, version, id string) {
	if !e.bearer(w, r, ScopePhoneCheck) {
		return
	}
	e.mu.Lock()
	c, ok := e.checks[id]
	if !ok || c.version != version {
		e.mu.Unlock()
		writeProblem(w, http.StatusNotFound, CodeCheckNotFound, "check not found")
		return
	}
	f := e.faultsLocked(c.phone, true)
	c.polls++
	if c.polls <= f.RateLimitPolls {
		e.mu.Unlock()
		writeRetryAfter(w, retryAfter(f))
		writeProblem(w, http.StatusTooManyRequests, CodeRateLimited, "too many requests")
		return
	}
	if c.polls <= f.RateLimitPolls+f.ServerErrorPolls {
		e.mu.Unlock()
		st := f.ServerErrorStatus
		if st < 500 || st > 599 {
			st = http.StatusServiceUnavailable
		}
		writeProblem(w, st, CodeServiceUnavailable, "temporarily unavailable")
		return
	}
	e.expireLocked(c)
	if c.version == "v0.1" && c.resultReady && c.status == StatusPending {
		if c.pendingServed < f.PendingPolls {
			c.pendingServed++
		} else {
			c.status = StatusCompleted
		}
	}
	j := c.json()
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, j)
}

// failDeviceStep ends the check in ERROR with code and answers the device:
// problem+json, or for a v0.2 check with redirect_url a 302 carrying error=.
func failDeviceStep(w http.ResponseWriter, c *check, status int, code, detail string) {
	c.status, c.errorCode, c.errorDesc = StatusError, code, detail
	if c.redirectURL != "" {
		loc, err := withQuery(c.redirectURL, url.Values{"check_id": {c.id}, "error": {code}, "error_description": {detail}})
		if err == nil {
			redirect(w, loc)
			return
		}
	}
	writeProblem(w, status, code, detail)
}

// checkURL is the device step's first request: the check_url.
// deviceStepOpenLocked answers 410 when c's device step can no longer run
// (expired, final, or its URL already used) and says whether it can.
func (e *Emulator) deviceStepOpenLocked(w http.ResponseWriter, c *check) bool {
	e.expireLocked(c)
	switch {
	case c.status == StatusExpired:
		writeProblem(w, http.StatusGone, CodeCheckExpired, "check expired")
		return false
	case c.final() || c.deviceDone:
		writeProblem(w, http.StatusGone, CodeCheckURLUsed, "check URL already used")
		return false
	}
	return true
}

func (e *Emulator) checkURL(w http.ResponseWriter, r *http.Request, version, id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.checks[id]
	if !ok || c.version != version {
		writeProblem(w, http.StatusNotFound, CodeCheckNotFound, "check not found")
		return
	}
	if !e.deviceStepOpenLocked(w, c) {
		return
	}
	f := e.faultsLocked(c.phone, true)
	mobile, _ := e.identifyLocked(sourceAddr(r))
	switch {
	case f.RedirectUnsupported:
		failDeviceStep(w, c, http.StatusNotImplemented, CodeMNORedirectUnsupported, "the mobile network operator does not support redirects")
		return
	case f.Mismatch:
		failDeviceStep(w, c, http.StatusConflict, CodeIPMSISDNMismatch, "the device's network does not serve this phone number")
		return
	case f.NotMobileIP || (!mobile && f.Match == nil):
		failDeviceStep(w, c, http.StatusPreconditionFailed, CodeNotMobileIP, "the request did not come from a mobile network")
		return
	}
	c.status = StatusPending
	c.deviceStarted = true
	redirect(w, e.newSessionLocked(RoleIDlayr, c.version+"/"+c.id, c.phone, c.base))
}

// completeCheck is where the operator's chain returns to IDlayr.
func (e *Emulator) completeCheck(w http.ResponseWriter, r *http.Request, version, id string) {
	sid := r.URL.Query().Get("sid")
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sessions[sid]
	if !ok || s.provider != RoleIDlayr || s.ref != version+"/"+id || !s.identified {
		writeProblem(w, http.StatusBadRequest, CodeSessionInvalid, "unknown or unfinished operator session")
		return
	}
	c, ok := e.checks[id]
	if !ok {
		writeProblem(w, http.StatusNotFound, CodeCheckNotFound, "check not found")
		return
	}
	if !e.deviceStepOpenLocked(w, c) {
		return
	}
	delete(e.sessions, sid)
	f := e.faultsLocked(c.phone, true)
	c.deviceDone = true
	if f.Match != nil {
		c.match = *f.Match
	} else {
		c.match = s.mobile && s.msisdn != "" && s.msisdn == c.phone
	}
	switch {
	case f.ErrorCode != "":
		c.status, c.errorCode, c.errorDesc = StatusError, f.ErrorCode, "check failed: "+f.ErrorCode
	case f.Expire:
		c.never = true
	case c.version == "v0.1":
		c.resultReady = true
		if f.PendingPolls == 0 {
			c.status = StatusCompleted
		}
	}
	if c.version == "v0.1" {
		writeJSON(w, http.StatusOK, map[string]string{"check_id": c.id, "status": "ok"})
		return
	}
	c.code = randomToken()
	if c.redirectURL != "" {
		loc, err := withQuery(c.redirectURL, url.Values{"check_id": {c.id}, "code": {c.code}})
		if err == nil {
			redirect(w, loc)
			return
		}
	}
	out := map[string]string{"check_id": c.id, "code": c.code}
	if c.referenceID != "" {
		out["reference_id"] = c.referenceID
	}
	writeJSON(w, http.StatusOK, out)
}

// patchCheck redeems a v0.2 code (RFC 6902 JSON Patch: add /code).
func (e *Emulator) patchCheck(w http.ResponseWriter, r *http.Request, id string) {
	if !e.bearer(w, r, ScopePhoneCheck) {
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		writeProblem(w, http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body over 64 KiB")
		return
	}
	if mediaType(r) != "application/json-patch+json" {
		writeProblem(w, http.StatusUnsupportedMediaType, CodeBadRequest, "Content-Type must be application/json-patch+json")
		return
	}
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &ops); err != nil {
		writeProblem(w, http.StatusBadRequest, CodeBadRequest, "body must be a JSON Patch array")
		return
	}
	var code string
	for _, op := range ops {
		if op.Op == "add" && op.Path == "/code" {
			if json.Unmarshal(op.Value, &code) != nil {
				code = ""
			}
		}
	}
	if code == "" {
		writeProblem(w, http.StatusBadRequest, CodeBadRequest, `expected [{"op":"add","path":"/code","value":"<code>"}]`)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.checks[id]
	if !ok || c.version != "v0.2" {
		writeProblem(w, http.StatusNotFound, CodeCheckNotFound, "check not found")
		return
	}
	if c.code == "" || c.codeUsed || subtle.ConstantTimeCompare([]byte(code), []byte(c.code)) != 1 {
		writeProblem(w, http.StatusNotFound, CodeCheckNotFound, "no check with this code")
		return
	}
	c.codeUsed = true
	e.expireLocked(c)
	if !c.final() && !c.never {
		c.resultReady = true
		c.status = StatusCompleted
	}
	writeJSON(w, http.StatusOK, c.json())
}

func (e *Emulator) coverage(w http.ResponseWriter, r *http.Request) {
	if !e.bearer(w, r, ScopeCoverage) {
		return
	}
	e.mu.Lock()
	mobile, _ := e.identifyLocked(sourceAddr(r))
	if mobile {
		e.stats.CoverageAnswered++
	}
	nw := e.cfg.Network
	e.mu.Unlock()
	if !mobile {
		writeProblem(w, http.StatusPreconditionFailed, CodeNotMobileIP, "not a mobile IP")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"country_code": nw.CountryCode,
		"network_id":   nw.NetworkID,
		"network_name": nw.NetworkName,
		"mobile_data":  true,
		"products":     []map[string]string{{"product_id": "PCK", "product_name": "Phone Check"}},
	})
}
