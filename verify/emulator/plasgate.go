package emulator

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"hash"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// PlasGate scopes (the "ip:" forms and openid are accepted too).
const (
	ScopePhoneVerify = "phone_verify"
	ScopeMobileID    = "mobile_id"
	ScopePhone       = "phone"
	ScopeProfile     = "profile"
)

// NotMobileDescription is PlasGate's error_description when the device is not
// on the mobile network (the seed's wording).
const NotMobileDescription = "Please turn off Wi-Fi or use Mobile data network"

// DefaultProfile is the seed's KYC example, returned for subscribers without
// a Config.Profiles entry.
var DefaultProfile = Profile{
	GivenName: "Teak", FamilyName: "Omeng", Birthdate: "1985-07-10", Gender: "male",
	PersonalIdentificationNumber: "1234567890",
	Address:                      Address{StreetAddress: "30 7th 594", Locality: "Phnom Penh City", PostalCode: "12000"},
}

// pgAuth is one PlasGate authorization, from authenticate to exchange.
type pgAuth struct {
	id                 string
	loginHint          string
	scopes             []string
	redirectURI, state string
	created            time.Time
	mobile, identified bool
	msisdn             string
	code, issuedState  string
	codeIssued         time.Time
	used               bool
}

func (e *Emulator) servePlasGate(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/ip/authenticate":
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			writeJSON(w, http.StatusMethodNotAllowed, pgFailure("method not allowed"))
			return
		}
		e.pgAuthenticate(w, r)
	case "/ip/callback":
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			writeJSON(w, http.StatusMethodNotAllowed, pgFailure("method not allowed"))
			return
		}
		e.pgCallback(w, r)
	case "/ip/ip-auth", "/ip/check-info":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeJSON(w, http.StatusMethodNotAllowed, pgFailure("method not allowed"))
			return
		}
		e.pgExchange(w, r)
	default:
		writeJSON(w, http.StatusNotFound, pgFailure("not found"))
	}
}

func pgFailure(desc string) map[string]string {
	return map[string]string{"status": "failed", "error_description": desc}
}

// parseScopes normalises a space-separated scope list; ok is false when a
// scope is unknown or none of the four custom scopes is present.
func parseScopes(s string) (scopes []string, ok bool) {
	for _, f := range strings.Fields(s) {
		switch f {
		case "openid":
			continue
		case ScopePhoneVerify, ScopeMobileID, ScopePhone, ScopeProfile:
		case "ip:" + ScopePhoneVerify, "ip:" + ScopeMobileID, "ip:" + ScopePhone, "ip:" + ScopeProfile:
			f = strings.TrimPrefix(f, "ip:")
		default:
			return nil, false
		}
		if !slices.Contains(scopes, f) {
			scopes = append(scopes, f)
		}
	}
	return scopes, len(scopes) > 0
}

// pgError sends the device back to the client with an OAuth error.
func pgError(w http.ResponseWriter, redirectURI, code, desc, state string) {
	v := url.Values{"error": {code}, "error_description": {desc}}
	if state != "" {
		v.Set("state", state)
	}
	loc, err := withQuery(redirectURI, v)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, pgFailure(desc))
		return
	}
	redirect(w, loc)
}

func (e *Emulator) redirectURIAllowed(u string) bool {
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
		return false
	}
	return len(e.cfg.PlasGateRedirectURIs) == 0 || slices.Contains(e.cfg.PlasGateRedirectURIs, u)
}

func (e *Emulator) pgAuthenticate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirectURI, state := q.Get("redirect_uri"), q.Get("state")
	if !e.redirectURIAllowed(redirectURI) {
		// Never redirect to an unregistered URI: answer the device directly.
		writeJSON(w, http.StatusBadRequest, pgFailure("invalid redirect_uri"))
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("private_key")), []byte(e.cfg.PlasGatePrivateKey)) != 1 {
		pgError(w, redirectURI, "unauthorized_client", "unknown private_key", state)
		return
	}
	scopes, ok := parseScopes(q.Get("scope"))
	if !ok {
		pgError(w, redirectURI, "invalid_scope", "scope must hold phone_verify, mobile_id, phone or profile", state)
		return
	}
	hint := q.Get("login_hint")
	if hint == "" {
		hint = q.Get("phone_number")
	}
	needHint := slices.Contains(scopes, ScopePhoneVerify) || slices.Contains(scopes, ScopeProfile)
	if (needHint && hint == "") || (hint != "" && !e164Digits.MatchString(hint)) {
		pgError(w, redirectURI, "invalid_request", "login_hint must be the phone number's digits without '+'", state)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.faultsLocked(hint, false)
	mobile, _ := e.identifyLocked(sourceAddr(r))
	if !mobile || f.NotMobileIP {
		pgError(w, redirectURI, "access_denied", NotMobileDescription, state)
		return
	}
	now := e.now()
	if len(e.pgAuths) > 10000 {
		for id, a := range e.pgAuths {
			if now.Sub(a.created) > time.Hour {
				delete(e.pgAuths, id)
				if a.code != "" {
					delete(e.pgCodes, a.code)
				}
			}
		}
	}
	a := &pgAuth{id: uuid4(), loginHint: hint, scopes: scopes, redirectURI: redirectURI, state: state, created: now}
	e.pgAuths[a.id] = a
	e.stats.PlasGateAuths++
	redirect(w, e.newSessionLocked(RolePlasGate, a.id, hint, e.base[RolePlasGate]))
}

// pgCallback is where the operator's chain returns to PlasGate; it sends the
// device to redirect_uri with a code (or an error).
func (e *Emulator) pgCallback(w http.ResponseWriter, r *http.Request) {
	sid := r.URL.Query().Get("sid")
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sessions[sid]
	var a *pgAuth
	if ok && s.provider == RolePlasGate && s.identified {
		a = e.pgAuths[s.ref]
	}
	if a == nil || a.code != "" {
		writeJSON(w, http.StatusBadRequest, pgFailure("unknown or unfinished session"))
		return
	}
	delete(e.sessions, sid)
	a.mobile, a.msisdn, a.identified = s.mobile, s.msisdn, true
	f := e.faultsLocked(a.loginHint, false)
	if f.PlasGateError != "" {
		pgError(w, a.redirectURI, f.PlasGateError, "authentication failed: "+f.PlasGateError, a.state)
		return
	}
	sessionState := uuid4()
	a.code = uuid4() + "." + sessionState + "." + uuid4()
	a.codeIssued = e.now()
	a.issuedState = a.state
	if f.StateMismatch {
		a.issuedState = uuid4()
	}
	e.pgCodes[a.code] = a
	e.stats.PlasGateCodes++
	v := url.Values{"code": {a.code}, "session_state": {sessionState}}
	if a.issuedState != "" {
		v.Set("state", a.issuedState)
	}
	loc, err := withQuery(a.redirectURI, v)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, pgFailure("bad redirect_uri"))
		return
	}
	redirect(w, loc)
}

func (e *Emulator) pgExchange(w http.ResponseWriter, r *http.Request) {
	note(r).authKind = "x-secret"
	body, err := readBody(w, r)
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, pgFailure("request body too large"))
		return
	}
	note(r).bodyKeys = jsonKeys(body)
	var req struct {
		ResponseType string `json:"response_type"`
		State        string `json:"state"`
		RedirectURI  string `json:"redirect_uri"`
		Code         string `json:"code"`
		PrivateKey   string `json:"private_key"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, pgFailure("malformed JSON body"))
		return
	}
	pk := req.PrivateKey
	if pk == "" {
		pk = r.URL.Query().Get("private_key")
	}
	secretOK := subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Secret")), []byte(e.cfg.PlasGateSecret))
	keyOK := subtle.ConstantTimeCompare([]byte(pk), []byte(e.cfg.PlasGatePrivateKey))
	if secretOK&keyOK != 1 {
		writeJSON(w, http.StatusForbidden, pgFailure("Failed Authentication/Authorization"))
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.pgCodes[req.Code]
	hint := ""
	if a != nil {
		hint = a.loginHint
	}
	f := e.faultsLocked(hint, false)
	switch {
	case f.Exchange403:
		writeJSON(w, http.StatusForbidden, pgFailure("Failed Authentication/Authorization"))
		return
	case f.Exchange500:
		writeJSON(w, http.StatusInternalServerError, pgFailure("Internal Server Error"))
		return
	case req.ResponseType != "code":
		writeJSON(w, http.StatusBadRequest, pgFailure("response_type must be code"))
		return
	case a == nil || a.used:
		writeJSON(w, http.StatusBadRequest, pgFailure("invalid, expired or already used code"))
		return
	}
	a.used = true // single use, whatever happens next
	if !e.now().Before(a.codeIssued.Add(e.cfg.CodeTTL)) {
		writeJSON(w, http.StatusBadRequest, pgFailure("invalid, expired or already used code"))
		return
	}
	if req.RedirectURI != a.redirectURI || req.State != a.issuedState {
		writeJSON(w, http.StatusBadRequest, pgFailure("redirect_uri or state does not match the authorization"))
		return
	}
	e.stats.PlasGateResults++
	writeJSON(w, http.StatusOK, e.pgResultLocked(a, f))
}

func (e *Emulator) pgResultLocked(a *pgAuth, f Faults) map[string]any {
	has := func(s string) bool { return slices.Contains(a.scopes, s) }
	identified := a.mobile && a.msisdn != ""
	res := map[string]any{"sid": uuid4(), "error_description": " "}
	success := identified
	if has(ScopePhoneVerify) || has(ScopeProfile) {
		verified := identified && a.msisdn == a.loginHint
		success = verified
		res["login_hint"] = a.loginHint
		if f.VerifiedBool {
			res["phone_number_verified"] = verified
		} else if verified {
			res["phone_number_verified"] = "true"
		} else {
			res["phone_number_verified"] = "false"
		}
	}
	if identified && has(ScopeMobileID) {
		res["mobile_id"] = digest(sha512.New(), "mobile_id:"+a.msisdn)
	}
	if success && has(ScopePhone) {
		res["phone_number"] = a.msisdn
	}
	if success && has(ScopeProfile) {
		p, ok := e.cfg.Profiles[a.msisdn]
		if !ok {
			p = DefaultProfile
		}
		res["given_name"], res["family_name"], res["birthdate"] = p.GivenName, p.FamilyName, p.Birthdate
		res["gender"], res["personal_identification_number"] = p.Gender, p.PersonalIdentificationNumber
		res["address"] = p.Address
	}
	switch {
	case success:
		res["status"] = "success"
		res["sub"] = digest(sha256.New(), "sub:"+a.msisdn)
	case !identified:
		res["status"], res["sub"], res["error_description"] = "failed", "anonymous", NotMobileDescription
	default:
		res["status"], res["sub"], res["error_description"] = "failed", "anonymous", "the phone number does not belong to this subscriber"
	}
	return res
}

func digest(h hash.Hash, s string) string {
	h.Write([]byte(s)) //nolint:errcheck // hashes never fail
	return hex.EncodeToString(h.Sum(nil))
}
