package emulator

import (
	"crypto/subtle"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// OperatorCookie is the cookie the operator's first hop sets and its second
// hop requires.
const OperatorCookie = "OPSESSION"

const sessionLifetime = 10 * time.Minute

// opSession is one walk of a device chain through the operator.
type opSession struct {
	id       string
	provider Role   // RoleIDlayr or RolePlasGate
	ref      string // IDlayr check id or PlasGate authorization id
	phone    string // selects the faults
	back     string // provider base URL the chain returns to
	cookie   string
	created  time.Time
	// Set by the second hop: what the operator saw.
	identified bool
	mobile     bool
	msisdn     string
}

// newSessionLocked starts a chain and returns the operator URL the provider
// redirects the device to. Callers hold e.mu.
func (e *Emulator) newSessionLocked(provider Role, ref, phone, back string) string {
	now := e.now()
	if len(e.sessions) > 1000 {
		for id, s := range e.sessions {
			if now.Sub(s.created) > sessionLifetime {
				delete(e.sessions, id)
			}
		}
	}
	s := &opSession{
		id:       randomToken(),
		provider: provider,
		ref:      ref,
		phone:    phone,
		back:     back,
		cookie:   randomToken(),
		created:  now,
	}
	e.sessions[s.id] = s
	return e.base[RoleOperator] + "/op/" + provider.String() + "/start?sid=" + url.QueryEscape(s.id)
}

func (e *Emulator) serveOperator(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/op/whoami" {
		e.whoami(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/op/")
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	prov, step, ok := strings.Cut(rest, "/")
	if !ok || (prov != "idlayr" && prov != "plasgate") {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	sid := r.URL.Query().Get("sid")
	e.mu.Lock()
	s, ok := e.sessions[sid]
	if ok && (s.provider.String() != prov || e.now().Sub(s.created) > sessionLifetime) {
		ok = false
	}
	var f Faults
	if ok {
		f = e.faultsLocked(s.phone, s.provider == RoleIDlayr)
	}
	e.mu.Unlock()
	if !ok {
		http.Error(w, "unknown or expired operator session", http.StatusBadRequest)
		return
	}
	q := "?sid=" + url.QueryEscape(sid)
	switch {
	case step == "start":
		http.SetCookie(w, &http.Cookie{Name: OperatorCookie, Value: s.cookie, Path: "/op/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		switch {
		case f.RedirectLoop:
			redirect(w, "loop-a"+q)
		case f.ExtraHops > 0:
			redirect(w, "/op/"+prov+"/relay/1"+q)
		case f.BadLocation:
			redirect(w, "next hop"+q)
		default:
			redirect(w, "hop2"+q)
		}
	case step == "loop-a":
		redirect(w, "loop-b"+q)
	case step == "loop-b":
		redirect(w, "loop-a"+q)
	case strings.HasPrefix(step, "relay/"):
		n, err := strconv.Atoi(strings.TrimPrefix(step, "relay/"))
		if err != nil || n < 1 {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if n >= f.ExtraHops {
			redirect(w, "/op/"+prov+"/hop2"+q)
			return
		}
		redirect(w, "/op/"+prov+"/relay/"+strconv.Itoa(n+1)+q)
	case step == "hop2" || step == "next hop":
		e.operatorHop2(w, r, s, f)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}

// operatorHop2 is where the operator identifies the subscriber: only with the
// cookie from the first hop, by the request's source address.
func (e *Emulator) operatorHop2(w http.ResponseWriter, r *http.Request, s *opSession, f Faults) {
	c, err := r.Cookie(OperatorCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(s.cookie)) != 1 {
		http.Error(w, "operator session cookie missing or wrong", http.StatusBadRequest)
		return
	}
	if f.SlowHop > 0 {
		note(r).delayed = true
		if !e.sleep(r.Context(), f.SlowHop) {
			return
		}
	}
	src := sourceAddr(r)
	e.mu.Lock()
	mobile, msisdn := e.identifyLocked(src)
	s.identified, s.mobile, s.msisdn = true, mobile, msisdn
	e.mu.Unlock()
	q := "?sid=" + url.QueryEscape(s.id)
	if s.provider == RoleIDlayr {
		// ref is "<version>/<check id>".
		version, id, _ := strings.Cut(s.ref, "/")
		redirect(w, s.back+"/phone_check/"+version+"/checks/"+id+"/complete"+q)
		return
	}
	redirect(w, s.back+"/ip/callback"+q)
}

// whoami answers what the operator sees for the caller: a debugging aid for
// namespace tests, like an operator's header-enrichment echo page.
func (e *Emulator) whoami(w http.ResponseWriter, r *http.Request) {
	src := sourceAddr(r)
	e.mu.Lock()
	mobile, msisdn := e.identifyLocked(src)
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"address": addrString(src), "mobile": mobile, "msisdn": msisdn})
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
