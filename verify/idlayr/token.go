package idlayr

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/simproof/simproof/verify"
)

// Scopes of the tokens the provider asks for.
const (
	ScopePhoneCheck = "phone_check"
	ScopeCoverage   = "coverage"
)

// refreshMargin is how long before its expiry a token is replaced, so a
// token never expires between the check that read it and the API's check of
// it. Short-lived tokens are replaced at half their life instead.
const refreshMargin = 60 * time.Second

// rawBasicAuth sets the Authorization header the seed describes: base64 of
// client_id:client_secret as they are. x/oauth2's AuthStyleInHeader
// form-escapes both first (RFC 6749 §2.3.1), which changes a secret holding
// '+', '/', '=' or ':' and is refused by the API; this transport, on the
// token client only, replaces that header.
type rawBasicAuth struct {
	id, secret string
	base       http.RoundTripper
}

func (t *rawBasicAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(t.id+":"+t.secret)))
	return t.base.RoundTrip(r)
}

// tokenCache holds one scope's access token: one token for many checks,
// replaced before it expires or when the API refuses it.
type tokenCache struct {
	cfg    clientcredentials.Config
	client *http.Client // the token client (rawBasicAuth over the server transport)
	now    func() time.Time
	limit  time.Duration // bounds one fetch: the lock is held meanwhile

	mu      sync.Mutex // held across a fetch: concurrent checks share one
	tok     *oauth2.Token
	fetched time.Time // on c.now's clock
	expiry  time.Time // on c.now's clock; zero: none given
	fetches int       // for tests and metrics
}

func newTokenCache(tokenURL, scope string, cr Credentials, server *http.Client, now func() time.Time, limit time.Duration) *tokenCache {
	base := server.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	return &tokenCache{
		cfg: clientcredentials.Config{
			ClientID:     cr.ClientID,
			ClientSecret: cr.ClientSecret,
			TokenURL:     tokenURL,
			Scopes:       []string{scope},
			AuthStyle:    oauth2.AuthStyleInHeader,
		},
		client: &http.Client{
			Transport:     &rawBasicAuth{id: cr.ClientID, secret: cr.ClientSecret, base: base},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now:   now,
		limit: limit,
	}
}

// get returns a valid access token, fetching one when there is none or the
// one held is about to expire.
func (c *tokenCache) get(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != nil && !c.stale() {
		return c.tok.AccessToken, nil
	}
	fctx, cancel := context.WithTimeout(ctx, c.limit)
	defer cancel()
	tok, err := c.cfg.Token(context.WithValue(fctx, oauth2.HTTPClient, c.client))
	c.fetches++
	if err != nil {
		return "", tokenError(err)
	}
	if tok.AccessToken == "" {
		return "", verify.Errorf(verify.CodeProviderError, "token: empty access_token")
	}
	c.tok, c.fetched, c.expiry = tok, c.now(), time.Time{}
	if !tok.Expiry.IsZero() {
		// x/oauth2 dates the expiry on the wall clock; re-date it on ours.
		c.expiry = c.fetched.Add(time.Until(tok.Expiry))
	}
	return tok.AccessToken, nil
}

func (c *tokenCache) stale() bool {
	if c.expiry.IsZero() {
		return false // no expires_in: valid until refused
	}
	margin := refreshMargin
	if half := c.expiry.Sub(c.fetched) / 2; half < margin {
		margin = half
	}
	return !c.now().Before(c.expiry.Add(-margin))
}

// invalidate drops the token the API refused, unless another check has
// replaced it already.
func (c *tokenCache) invalidate(refused string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok != nil && c.tok.AccessToken == refused {
		c.tok = nil
	}
}

func (c *tokenCache) fetchCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetches
}

// tokenError maps a failed token request. RetrieveError's own text holds the
// response body, so only the status and the OAuth error code are kept.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		st := re.Response.StatusCode
		e := &verify.Error{HTTPStatus: st, ProviderCode: re.ErrorCode, Message: "token request refused"}
		switch {
		case st == http.StatusBadRequest || st == http.StatusUnauthorized || st == http.StatusForbidden:
			e.Code = verify.CodeProviderAuthFailed
			e.Message = "token request refused: check the client credentials and their phone_check scope"
		case st == http.StatusTooManyRequests:
			e.Code = verify.CodeRateLimited
		default:
			e.Code = verify.CodeProviderError
		}
		return e
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return verify.TransportError("token", err, time.Now())
	}
	return verify.Errorf(verify.CodeProviderError, "token: %s", verify.RedactText(err.Error()))
}
