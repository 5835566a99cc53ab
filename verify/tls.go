package verify

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// CertPool returns the system's trust roots plus the PEM certificates of
// caFile ("" adds none). Verification is never switched off: extra roots are
// the only way to trust a sandbox, a proxy or the test emulator.
func CertPool(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls ca_file %s: no PEM certificate in it", caFile)
	}
	return pool, nil
}

// NewServerClient returns the ordinary client for the server-side calls
// (token, create, poll, exchange), trusting roots. It never follows
// redirects: an API answering with one is answered with an error by the
// caller, and credentials must not travel to another host.
func NewServerClient(roots *x509.CertPool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:       http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12,
				// Resumed sessions skip certificate verification's CPU on the
				// connections a burst of checks opens.
				ClientSessionCache: tls.NewLRUClientSessionCache(64)},
			ForceAttemptHTTP2: true,
			// Checks on an array of modems (8–64) call the provider at once:
			// with Go's default of 2 idle connections per host most of a
			// round's creates and polls paid a new TCP and TLS handshake.
			MaxIdleConns:          128,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
