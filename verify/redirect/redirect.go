// Package redirect owns the device step: the one redirect engine that fetches
// a check URL over the modem's pinned client and follows the operator's
// redirect chain hop by hop, for IDlayr, PlasGate and device-only mode (the
// API's open primitive) alike.
//
// Redirects are followed by hand, not by net/http, so that every hop is
// recorded (redacted URL, status, addresses, timing), a chain can stop at a
// redirect_uri without fetching it, credentials never travel over plain http,
// and loops and overlong chains end with the catalogue's codes.
package redirect

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/simproof/simproof/verify"
)

// Defaults of Options.
const (
	DefaultMaxHops    = 10
	DefaultHopTimeout = 5 * time.Second
	DefaultMaxBody    = 64 << 10
	DefaultUserAgent  = "simproof"
	DefaultAccept     = "text/html,application/json;q=0.9,*/*;q=0.8"
)

// Options shape one chain. The zero value works.
type Options struct {
	// MaxHops caps the requests of the chain (default 10): a chain still
	// redirecting after that many is redirect_limit.
	MaxHops int
	// HopTimeout bounds each request, from dial to the end of its body
	// (default 5 s). The whole chain is bounded by the context.
	HopTimeout time.Duration
	// StopAt is a redirect_uri: the chain stops, without fetching it, at the
	// first Location whose host, port and path match (scheme ignored; the
	// path equal or a sub-path), and Result.RedirectParams holds its query
	// and fragment parameters.
	StopAt string
	// Interface names the interface the client is pinned to, for the trace.
	Interface string
	// UserAgent and Accept are sent on every hop.
	UserAgent string
	Accept    string
	// Header holds extra request headers. Credentials among them
	// (Authorization, Cookie, X-Secret ...) are sent only over https and
	// only to the first hop's host and port.
	Header http.Header
	// Method and Body of the first request (default GET, none). 303 turns
	// the method into GET, as do 301/302 for POST; 307/308 keep both.
	Method string
	Body   []byte
	// MaxBody caps the final body kept (default 64 KiB); more is truncated.
	MaxBody int64

	now func() time.Time // tests judge certificates against a fixed clock
}

func (o *Options) defaults() {
	if o.MaxHops <= 0 {
		o.MaxHops = DefaultMaxHops
	}
	if o.HopTimeout <= 0 {
		o.HopTimeout = DefaultHopTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.Accept == "" {
		o.Accept = DefaultAccept
	}
	if o.Method == "" {
		o.Method = http.MethodGet
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.now == nil {
		o.now = time.Now
	}
}

// Result is how a chain ended: the api.md open primitive's answer.
type Result struct {
	// FinalStatus is the status of the last response: the final page's, or
	// the redirect's whose Location matched StopAt.
	FinalStatus int `json:"final_status"`
	// FinalURL is the last URL (the StopAt Location when Stopped), redacted:
	// RedirectParams carries its parameters in clear.
	FinalURL string `json:"final_url"`
	// Body is the final body: json.RawMessage when the content type is JSON
	// and the body is valid JSON, else a string; nil when Stopped.
	Body          any    `json:"body"`
	BodyTruncated bool   `json:"body_truncated,omitempty"`
	ContentType   string `json:"content_type,omitempty"`
	// RedirectParams are the query and fragment parameters (first value of
	// each; fragment wins) of the Location that ended the chain at StopAt.
	RedirectParams map[string]string `json:"redirect_params,omitempty"`
	Stopped        bool              `json:"stopped"`
	Trace          []verify.Hop      `json:"trace"`

	// RawBody is the final body as read (at most MaxBody bytes).
	RawBody []byte `json:"-"`
}

// Redacted returns a copy fit for the journal: redirect parameters and
// body redacted.
func (r *Result) Redacted() *Result {
	c := *r
	c.RedirectParams = verify.RedactParams(r.RedirectParams)
	c.RawBody = nil
	switch b := r.Body.(type) {
	case json.RawMessage:
		c.Body = json.RawMessage(verify.RedactJSON(b))
	case string:
		c.Body = verify.RedactText(b)
	}
	c.Trace = append([]verify.Hop(nil), r.Trace...)
	return &c
}

// IsJSON reports whether the final body was parsed as JSON.
func (r *Result) IsJSON() bool {
	_, ok := r.Body.(json.RawMessage)
	return ok
}

// OpenRequest is the API's open primitive: {url, stop_at?, max_hops?}.
type OpenRequest struct {
	URL     string `json:"url"`
	StopAt  string `json:"stop_at,omitempty"`
	MaxHops int    `json:"max_hops,omitempty"`
}

// Open runs the device-only step: fetch req.URL over client (the modem's
// pinned client), following redirects, and return how the chain ended. base
// supplies the rest of the options (hop timeout, interface name ...).
func Open(ctx context.Context, client *http.Client, req OpenRequest, base Options) (*Result, error) {
	base.StopAt = req.StopAt
	if req.MaxHops > 0 {
		base.MaxHops = req.MaxHops
	}
	return Follow(ctx, client, req.URL, base)
}

// credentialHeaders are sent only over https to the first hop's origin.
var credentialHeaders = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "X-Secret": true,
}

// Follow fetches rawURL (an absolute https URL) over client and follows its
// redirects. On failure the error is a *verify.Error whose Trace holds the
// hops made; a cancelled ctx gives code interrupted (errors.Is
// context.Canceled).
func Follow(ctx context.Context, client *http.Client, rawURL string, o Options) (*Result, error) {
	o.defaults()
	if client == nil {
		return nil, verify.Errorf(verify.CodeNoBearer, "no pinned client for the device step")
	}
	start, err := parseStart(rawURL)
	if err != nil {
		return nil, err
	}
	var stop *url.URL
	if o.StopAt != "" {
		stop, err = url.Parse(o.StopAt)
		if err != nil || stop.Host == "" {
			return nil, verify.Errorf(verify.CodeBadURL, "stop_at %q is not an absolute URL", verify.RedactURL(o.StopAt))
		}
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, fmt.Errorf("cookie jar: %w", err)
	}
	c := &http.Client{
		Transport:     client.Transport,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	res := &Result{}
	fail := func(e *verify.Error) (*Result, error) {
		e.Trace = res.Trace
		return nil, e
	}
	seen := map[string]bool{}
	method, body := o.Method, o.Body
	u := start
	for n := 0; ; n++ {
		if n >= o.MaxHops {
			return fail(verify.Errorf(verify.CodeRedirectLimit,
				"still redirecting after %d requests (next %s)", o.MaxHops, verify.RedactURL(u.String())))
		}
		// A loop is the same request again: same method, URL and cookies.
		// Cookies count because some operators set one and redirect to the
		// same URL, which then answers differently.
		key := method + " " + u.String() + "\n" + cookieHeader(jar, u)
		if seen[key] {
			return fail(verify.Errorf(verify.CodeRedirectLoop,
				"%s was already requested in this chain", verify.RedactURL(u.String())))
		}
		seen[key] = true

		h, herr := doHop(ctx, c, n, method, u, start, body, &o)
		res.Trace = append(res.Trace, h.hop)
		if herr != nil {
			return fail(herr)
		}
		if !isRedirect(h.status) {
			res.FinalStatus = h.status
			res.FinalURL = verify.RedactURL(u.String())
			res.ContentType = h.contentType
			res.RawBody = h.body
			res.BodyTruncated = h.truncated
			res.Body = decodeBody(h.contentType, h.body, h.truncated)
			return res, nil
		}
		if h.location == "" {
			return fail(verify.Errorf(verify.CodeBadRedirect,
				"HTTP %d from %s without a Location", h.status, verify.RedactURL(u.String())))
		}
		next, err := ResolveLocation(u, h.location)
		if err != nil {
			return fail(verify.Errorf(verify.CodeBadRedirect, "hop %d: %v", n+1, err))
		}
		if stop != nil && StopMatches(stop, next) {
			res.Stopped = true
			res.FinalStatus = h.status
			res.FinalURL = verify.RedactURL(next.String())
			res.RedirectParams = Params(next)
			return res, nil
		}
		switch h.status {
		case http.StatusSeeOther:
			if method != http.MethodHead {
				method, body = http.MethodGet, nil
			}
		case http.StatusMovedPermanently, http.StatusFound:
			if method == http.MethodPost {
				method, body = http.MethodGet, nil
			}
		}
		u = next
	}
}

func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

func parseStart(raw string) (*url.URL, error) {
	s, err := sanitize(raw)
	if err == nil {
		var u *url.URL
		u, err = url.Parse(s)
		if err == nil {
			if u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
				err = errors.New("not an absolute https URL")
			} else {
				u.User = nil
				return u, nil
			}
		}
	}
	return nil, verify.Errorf(verify.CodeBadURL, "%q: %s", verify.RedactURL(raw), verify.RedactText(errText(err)))
}

func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error() // url.Error repeats the URL in clear
	}
	return err.Error()
}

func cookieHeader(jar http.CookieJar, u *url.URL) string {
	var b strings.Builder
	for _, c := range jar.Cookies(u) {
		b.WriteString(c.Name)
		b.WriteByte('=')
		b.WriteString(c.Value)
		b.WriteByte(';')
	}
	return b.String()
}

// sameOrigin: host and port equal (the scheme is checked apart).
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Hostname(), b.Hostname()) && effectivePort(a) == effectivePort(b)
}

func effectivePort(u *url.URL) string {
	p := u.Port()
	switch {
	case p == "" && u.Scheme == "https":
		return "443"
	case p == "" && u.Scheme == "http":
		return "80"
	}
	return p
}

type hopResult struct {
	hop         verify.Hop
	status      int
	location    string
	contentType string
	body        []byte
	truncated   bool
}

func doHop(ctx context.Context, c *http.Client, n int, method string, u, first *url.URL, body []byte, o *Options) (hopResult, *verify.Error) {
	r := hopResult{hop: verify.Hop{URL: verify.RedactURL(u.String()), Method: method, Interface: o.Interface}}
	if err := ctx.Err(); err != nil {
		e := verify.TransportError(fmt.Sprintf("hop %d", n+1), err, o.now())
		r.hop.Error = e.Message
		return r, e
	}
	hctx, cancel := context.WithTimeout(ctx, o.HopTimeout)
	defer cancel()
	// The trace hooks may run on the transport's dial goroutine, which
	// outlives a cancelled request: guard what they write.
	var mu sync.Mutex
	var connected bool
	var tlsErr error
	trace := &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			mu.Lock()
			defer mu.Unlock()
			connected = true
			if info.Conn != nil {
				r.hop.LocalAddress = info.Conn.LocalAddr().String()
				r.hop.RemoteAddress = info.Conn.RemoteAddr().String()
			}
		},
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			mu.Lock()
			defer mu.Unlock()
			tlsErr = err
		},
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(hctx, trace), method, u.String(), rd)
	if err != nil {
		e := verify.Errorf(verify.CodeBadRedirect, "hop %d: cannot request %s", n+1, r.hop.URL)
		r.hop.Error = e.Message
		return r, e
	}
	req.Header.Set("User-Agent", o.UserAgent)
	req.Header.Set("Accept", o.Accept)
	credsOK := u.Scheme == "https" && sameOrigin(first, u)
	for k, vs := range o.Header {
		ck := http.CanonicalHeaderKey(k)
		if credentialHeaders[ck] && !credsOK {
			continue
		}
		req.Header[ck] = append([]string(nil), vs...)
	}

	t0 := time.Now()
	resp, err := c.Do(req)
	if err == nil {
		r.status = resp.StatusCode
		r.hop.Status = resp.StatusCode
		r.location = resp.Header.Get("Location")
		r.contentType = resp.Header.Get("Content-Type")
		limit := o.MaxBody
		r.body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
		resp.Body.Close()
		if int64(len(r.body)) > limit {
			r.body, r.truncated = r.body[:limit], true
		}
	}
	mu.Lock()
	defer mu.Unlock()
	r.hop.DurationMS = float64(time.Since(t0).Microseconds()) / 1000
	if err == nil {
		return r, nil
	}
	op := fmt.Sprintf("hop %d %s %s", n+1, method, u.Host)
	if tlsErr != nil && ctx.Err() == nil && hctx.Err() == nil {
		err = tlsErr // the handshake's own error says more than the transport's
	}
	e := verify.TransportError(op, err, o.now())
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		e.Code, e.Message, e.Err = verify.CodeInterrupted, op+": cancelled", ctx.Err()
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		e.Code, e.Message = verify.CodeConnectTimeout, op+": the check's deadline passed during this hop"
	case errors.Is(hctx.Err(), context.DeadlineExceeded):
		e.Code = verify.CodeConnectTimeout
		if connected {
			e.Message = fmt.Sprintf("%s: no complete answer within the hop timeout (%s)", op, o.HopTimeout)
		} else {
			e.Message = fmt.Sprintf("%s: no connection within the hop timeout (%s)", op, o.HopTimeout)
		}
	}
	r.hop.Error = e.Message
	return r, e
}

func decodeBody(contentType string, body []byte, truncated bool) any {
	if body == nil {
		return ""
	}
	if !truncated && isJSONType(contentType) && json.Valid(body) {
		return json.RawMessage(body)
	}
	return string(body)
}

func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}
