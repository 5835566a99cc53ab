package verify

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Redacted replaces a secret wherever one is removed.
const Redacted = "REDACTED"

// secretParams are query, fragment and JSON keys whose values are secrets.
var secretParams = map[string]bool{
	"code": true, "state": true, "session_state": true, "private_key": true,
	"access_token": true, "client_secret": true, "token": true, "id_token": true,
	"refresh_token": true, "password": true, "secret": true, "x-secret": true,
	"api_key": true, "apikey": true, "client_assertion": true,
}

// phoneParams are keys whose values are phone numbers, masked not removed.
var phoneParams = map[string]bool{
	"login_hint": true, "phone_number": true, "msisdn": true, "phone": true,
}

// secretHeaders never appear in a log or trace.
var secretHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Secret"}

func normKey(k string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(k)), "[]")
}

// IsSecretParam reports whether a query/JSON key names a secret (code,
// state, session_state, private_key, tokens ...), case-insensitively.
func IsSecretParam(key string) bool { return secretParams[normKey(key)] }

// IsPhoneParam reports whether a key names a phone number (login_hint,
// phone_number, msisdn, phone).
func IsPhoneParam(key string) bool { return phoneParams[normKey(key)] }

// MaskPhone keeps the first 4 and last 2 digits of a phone number and masks
// the others ("447700900123" → "4477******23"); other characters are kept.
// A number of fewer than 8 digits is masked whole.
func MaskPhone(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := []byte(s)
	d := 0
	for i := range b {
		if !isDigit(b[i]) {
			continue
		}
		if n < 8 || (d >= 4 && d < n-2) {
			b[i] = '*'
		}
		d++
	}
	return string(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// maskDigitRuns masks every run of 8 or more digits as a phone number. Only
// contiguous runs: separators ("+44 7700 900123") are not recognised, which
// keeps dates and times readable.
func maskDigitRuns(s string) string {
	var b []byte
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j-i >= 8 {
			if b == nil {
				b = []byte(s)
			}
			copy(b[i:j], MaskPhone(s[i:j]))
		}
		i = j
	}
	if b == nil {
		return s
	}
	return string(b)
}

// RedactURL returns raw with every secret removed: values of secret query
// and fragment parameters replaced by REDACTED, phone-number parameters and
// any long digit run masked, user info dropped. Keys are matched decoded and
// case-insensitively, '&' and ';' both separate parameters. A string that
// does not parse as a URL is redacted as text.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return RedactText(raw)
	}
	v := *u
	v.RawQuery, v.ForceQuery = "", false
	v.Fragment, v.RawFragment = "", ""
	if v.User != nil {
		v.User = url.User(Redacted)
	}
	var b strings.Builder
	b.WriteString(maskDigitRuns(v.String()))
	if u.RawQuery != "" || u.ForceQuery {
		b.WriteByte('?')
		b.WriteString(redactQuery(u.RawQuery))
	}
	if u.Fragment != "" || u.RawFragment != "" {
		b.WriteByte('#')
		b.WriteString(redactQuery(u.EscapedFragment()))
	}
	return b.String()
}

// redactQuery redacts an encoded query (or fragment) keeping its order and
// separators.
func redactQuery(q string) string {
	var b strings.Builder
	for q != "" {
		i := strings.IndexAny(q, "&;")
		part, sep := q, ""
		if i >= 0 {
			part, sep, q = q[:i], q[i:i+1], q[i+1:]
		} else {
			q = ""
		}
		b.WriteString(redactPair(part))
		b.WriteString(sep)
	}
	return b.String()
}

func redactPair(part string) string {
	k, v, hasEq := strings.Cut(part, "=")
	key, err := url.QueryUnescape(k)
	if err != nil {
		key = k
	}
	switch {
	case !hasEq:
		return maskDigitRuns(part)
	case IsSecretParam(key):
		return k + "=" + Redacted
	case IsPhoneParam(key):
		if dv, err := url.QueryUnescape(v); err == nil {
			// '*' is legal in a query: keep the mask readable.
			return maskDigitRuns(k) + "=" + strings.ReplaceAll(url.QueryEscape(MaskPhone(dv)), "%2A", "*")
		}
		return maskDigitRuns(k) + "=" + MaskPhone(v)
	default:
		return maskDigitRuns(k) + "=" + maskDigitRuns(v)
	}
}

// RedactParams returns a copy of params with secret values replaced and
// phone numbers masked (redirect_params as the journal keeps them).
func RedactParams(params map[string]string) map[string]string {
	if params == nil {
		return nil
	}
	out := make(map[string]string, len(params))
	for k, v := range params {
		switch {
		case IsSecretParam(k):
			out[k] = Redacted
		case IsPhoneParam(k):
			out[k] = MaskPhone(v)
		default:
			out[k] = RedactText(v)
		}
	}
	return out
}

// RedactHeader returns a copy of h with credentials (Authorization, Cookie,
// Set-Cookie, X-Secret ...) replaced, for a log line.
func RedactHeader(h http.Header) http.Header {
	c := h.Clone()
	for _, k := range secretHeaders {
		if _, ok := c[k]; ok {
			c[k] = []string{Redacted}
		}
	}
	return c
}

var (
	keyAlt   = `code|state|session_state|private_key|access_token|client_secret|token|id_token|refresh_token|password|secret|x-secret|api_key|apikey|client_assertion`
	reKV     = regexp.MustCompile(`(?i)(^|[?&;#\s"'(,])(` + keyAlt + `)=([^&;#\s"')]*)`)
	reJSONKV = regexp.MustCompile(`(?i)("(?:` + keyAlt + `)"\s*:\s*")((?:[^"\\]|\\.)*)"`)
	reAuth   = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*`)
	reHeader = regexp.MustCompile(`(?i)\b(x-secret|authorization|cookie|set-cookie)\s*:\s*[^\r\n]*`)
)

// RedactText redacts free text (an error message, a response excerpt, a
// log line): key=value and "key":"value" pairs of secret keys, Bearer and
// Basic credentials, credential header lines, and digit runs that look like
// phone numbers.
func RedactText(s string) string {
	if s == "" {
		return s
	}
	s = reHeader.ReplaceAllString(s, "$1: "+Redacted)
	s = reAuth.ReplaceAllString(s, "$1 "+Redacted)
	s = reJSONKV.ReplaceAllString(s, `${1}`+Redacted+`"`)
	s = reKV.ReplaceAllString(s, `${1}${2}=`+Redacted)
	return maskDigitRuns(s)
}

// RedactJSON redacts a JSON document: secret keys' values replaced, phone
// keys masked, other strings redacted as text. Input that is not JSON is
// redacted as text.
func RedactJSON(raw []byte) []byte {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return []byte(RedactText(string(raw)))
	}
	out, err := json.Marshal(redactValue("", v))
	if err != nil {
		return []byte(Redacted)
	}
	return out
}

func redactValue(key string, v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = redactValue(k, e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = redactValue(key, e)
		}
		return t
	case string:
		switch {
		case IsSecretParam(key):
			return Redacted
		case IsPhoneParam(key):
			return MaskPhone(t)
		default:
			return RedactText(t)
		}
	default:
		if IsSecretParam(key) && v != nil {
			return Redacted
		}
		return v
	}
}
