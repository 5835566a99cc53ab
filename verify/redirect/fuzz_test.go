package redirect_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/redirect"
)

// FuzzLocation resolves hostile Location values and checks that resolution
// never panics, yields only absolute http(s) URLs with a host, and that
// redaction of the result never shows a secret parameter appended to it,
// wherever the parser puts it (query or fragment). The seed corpus is in
// testdata/fuzz/FuzzLocation.
func FuzzLocation(f *testing.F) {
	f.Add("https://api.example/phone_check/v0.1/checks/1/redirect", "/op?sid=1", "Zm9vYmFyYmF6cXV4")
	f.Add("https://api.example:8443/a/b", "next hop?x=a b", "c0de1234secret")
	f.Fuzz(func(t *testing.T, base, loc, secret string) {
		b, err := url.Parse(base)
		if err != nil || !b.IsAbs() {
			return
		}
		u, err := redirect.ResolveLocation(b, loc)
		if err == nil {
			if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
				t.Fatalf("ResolveLocation(%q, %q) = %q", base, loc, u)
			}
			_ = verify.RedactURL(u.String())
		}

		if m := verify.MaskPhone(secret); len(secret) >= 8 && strings.Trim(secret, "0123456789") == "" &&
			strings.Trim(m[4:len(m)-2], "*") != "" {
			t.Fatalf("MaskPhone(%q) = %q", secret, m)
		}

		// The property needs a secret that cannot turn up by accident.
		if len(secret) < 8 || strings.Trim(secret, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" ||
			strings.Contains(base, secret) || strings.Contains(loc, secret) {
			return
		}
		sep := "?"
		if strings.ContainsAny(loc, "?#") {
			sep = "&"
		}
		for _, key := range []string{"code", "state", "session_state", "private_key", "access_token", "CODE"} {
			withSecret := loc + sep + key + "=" + secret
			u, err := redirect.ResolveLocation(b, withSecret)
			if err != nil {
				continue
			}
			if red := verify.RedactURL(u.String()); strings.Contains(red, secret) {
				t.Fatalf("RedactURL(%q) = %q shows the %s", u, red, key)
			}
		}
	})
}
