package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"
)

// maxIPSANs bounds the on-demand growth of the leaf's IP SANs.
const maxIPSANs = 256

// certs holds the test CA and the leaf it signs. The leaf is re-issued when
// a TLS connection arrives on a local address it does not name yet, so the
// same emulator works by IP inside a namespace and on loopback.
type certs struct {
	caKey   *ecdsa.PrivateKey
	caCert  *x509.Certificate
	caPEM   []byte
	leafKey *ecdsa.PrivateKey
	from    time.Time

	mu   sync.Mutex // guards dns, ips, leaf
	dns  []string
	ips  []netip.Addr
	leaf *tls.Certificate
}

func newCerts(dns []string, ips []netip.Addr, notBefore time.Time) (*certs, error) {
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Hour)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "simproof emulator test CA", Organization: []string{"simproof"}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA: %w", err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate leaf key: %w", err)
	}
	c := &certs{
		caKey:   caKey,
		caCert:  caCert,
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		leafKey: leafKey,
		from:    notBefore,
	}
	for _, d := range dns {
		if d != "" && !slices.Contains(c.dns, d) {
			c.dns = append(c.dns, d)
		}
	}
	for _, a := range ips {
		if a = a.Unmap(); a.IsValid() && !slices.Contains(c.ips, a) {
			c.ips = append(c.ips, a)
		}
	}
	if err := c.issueLocked(); err != nil {
		return nil, err
	}
	return c, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// issueLocked signs a new leaf for the current names. Callers hold c.mu (or
// own c exclusively).
func (c *certs) issueLocked() error {
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: c.dns[0], Organization: []string{"simproof emulator"}},
		NotBefore:    c.from,
		NotAfter:     c.from.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     append([]string(nil), c.dns...),
	}
	for _, a := range c.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.caCert, &c.leafKey.PublicKey, c.caKey)
	if err != nil {
		return fmt.Errorf("create leaf: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parse leaf: %w", err)
	}
	c.leaf = &tls.Certificate{Certificate: [][]byte{der, c.caCert.Raw}, PrivateKey: c.leafKey, Leaf: leaf}
	return nil
}

func (c *certs) addIP(a netip.Addr) {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if slices.Contains(c.ips, a) || len(c.ips) >= maxIPSANs {
		return
	}
	c.ips = append(c.ips, a)
	if err := c.issueLocked(); err != nil {
		c.ips = c.ips[:len(c.ips)-1]
	}
}

// getCertificate serves the leaf. A connection without SNI (a client dialing
// an IP) gets its local address added to the leaf first; an unknown SNI name
// is never added, so a client asking for the wrong host fails verification
// exactly as it would against a real server.
func (c *certs) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" && hello.Conn != nil {
		if ap, err := netip.ParseAddrPort(hello.Conn.LocalAddr().String()); err == nil {
			c.addIP(ap.Addr())
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leaf == nil {
		return nil, errors.New("no leaf certificate")
	}
	return c.leaf, nil
}

// CAPEM is the test CA certificate in PEM, for the agent's tls.ca_file.
func (e *Emulator) CAPEM() []byte { return append([]byte(nil), e.certs.caPEM...) }

// WriteCA writes CAPEM to path (mode 0644: it is public).
func (e *Emulator) WriteCA(path string) error {
	if err := os.WriteFile(path, e.certs.caPEM, 0o644); err != nil {
		return fmt.Errorf("emulator: write CA: %w", err)
	}
	return nil
}

// CertPool is a pool holding only the test CA.
func (e *Emulator) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(e.certs.caCert)
	return p
}
