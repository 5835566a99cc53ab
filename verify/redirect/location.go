package redirect

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/simproof/simproof/verify"
)

// maxLocation bounds a Location value; real ones are a few hundred bytes.
const maxLocation = 16 << 10

// ResolveLocation resolves a Location header value against the URL that
// returned it, the way browsers tolerate what operators send: surrounding
// white space is trimmed, spaces, non-ASCII bytes, stray '%' and characters
// RFC 3986 forbids are percent-encoded, relative references are resolved.
// The result must be an absolute http or https URL with a host; user info is
// dropped (net/http would turn it into an Authorization header). Errors never
// hold the Location in clear.
func ResolveLocation(base *url.URL, loc string) (*url.URL, error) {
	if len(loc) > maxLocation {
		return nil, fmt.Errorf("Location of %d bytes", len(loc))
	}
	s, err := sanitize(loc)
	if err != nil {
		return nil, err
	}
	if s == "" {
		return nil, errors.New("empty Location")
	}
	next, err := base.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("Location %q: %s", verify.RedactURL(s), verify.RedactText(errText(err)))
	}
	if next.Scheme != "http" && next.Scheme != "https" {
		return nil, fmt.Errorf("Location scheme %q is not http or https", verify.RedactText(next.Scheme))
	}
	if next.Host == "" || next.Opaque != "" || next.Hostname() == "" {
		return nil, fmt.Errorf("Location %q has no host", verify.RedactURL(s))
	}
	next.User = nil
	return next, nil
}

// sanitize percent-encodes what a lenient server puts in a Location but a
// URL may not hold. Control characters are refused: a Location with a CR or
// NUL in it is an attack or a bug, not a sloppy encoding.
func sanitize(loc string) (string, error) {
	loc = strings.TrimSpace(loc)
	var b strings.Builder
	for i := 0; i < len(loc); i++ {
		c := loc[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return "", fmt.Errorf("Location holds control character %#02x", c)
		case c == '%':
			if i+2 < len(loc) && isHex(loc[i+1]) && isHex(loc[i+2]) {
				b.WriteByte(c)
			} else {
				b.WriteString("%25")
			}
		case c >= 0x80 || strings.IndexByte(" \"<>\\^`{|}", c) >= 0:
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// StopMatches reports whether u is at or below stop: same host and port,
// path equal or a sub-path; the scheme is ignored (a redirect_uri registered
// as https may come back as http), and a port is compared as written, a
// scheme's default port counting as none.
func StopMatches(stop, u *url.URL) bool {
	if !strings.EqualFold(stop.Hostname(), u.Hostname()) || writtenPort(stop) != writtenPort(u) {
		return false
	}
	sp, up := stop.Path, u.Path
	if sp == "" {
		sp = "/"
	}
	if up == "" {
		up = "/"
	}
	if sp == "/" {
		return true
	}
	sp = strings.TrimSuffix(sp, "/")
	return up == sp || strings.HasPrefix(up, sp+"/")
}

func writtenPort(u *url.URL) string {
	p := u.Port()
	if (p == "443" && u.Scheme == "https") || (p == "80" && u.Scheme == "http") {
		return ""
	}
	return p
}

// Params returns the query and fragment parameters of u, first value of
// each, the fragment's winning (an implicit-flow answer puts them there).
func Params(u *url.URL) map[string]string {
	out := map[string]string{}
	add := func(raw string) {
		// ParseQuery keeps what it could parse when some pair is malformed.
		v, _ := url.ParseQuery(raw)
		for k, vs := range v {
			if len(vs) > 0 {
				out[k] = vs[0]
			}
		}
	}
	add(u.RawQuery)
	if f := u.EscapedFragment(); f != "" {
		add(f)
	}
	return out
}
