package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("s3cr3t\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	for _, c := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"defaults", nil, true},
		{"subscribers", []string{"-subscriber", "100.64.0.2=447700900123", "-subscriber", "100.64.0.3=+447700900124", "-mobile-cidr", "100.64.0.0/10"}, true},
		{"bad subscriber", []string{"-subscriber", "100.64.0.2"}, false},
		{"bad msisdn", []string{"-subscriber", "100.64.0.2=abc"}, false},
		{"bad cidr", []string{"-mobile-cidr", "nope"}, false},
		{"secret file", []string{"-client-secret-file", secret}, true},
		{"empty secret file", []string{"-plasgate-secret-file", empty}, false},
		{"missing secret file", []string{"-plasgate-private-key-file", filepath.Join(dir, "none")}, false},
		{"stray argument", []string{"extra"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := parseFlags(c.args, io.Discard)
			if (err == nil) != c.ok {
				t.Fatalf("err %v", err)
			}
			if !c.ok {
				return
			}
			switch c.name {
			case "defaults":
				if o.cfg.Subscribers[netip.MustParseAddr("127.0.0.1")] != "447700900123" {
					t.Errorf("default subscriber %v", o.cfg.Subscribers)
				}
			case "subscribers":
				if len(o.cfg.Subscribers) != 2 || o.cfg.Subscribers[netip.MustParseAddr("100.64.0.3")] != "447700900124" || len(o.cfg.MobileRanges) != 1 {
					t.Errorf("%+v", o.cfg)
				}
			case "secret file":
				if o.cfg.ClientSecret != "s3cr3t" {
					t.Errorf("secret %q", o.cfg.ClientSecret)
				}
			}
		})
	}
}

func TestRunServesAndStops(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	o, err := parseFlags([]string{"-idlayr-listen", "127.0.0.1:0", "-plasgate-listen", "127.0.0.1:0", "-operator-listen", "127.0.0.1:0", "-ca-out", ca}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, pw); pw.Close() }()
	urls := map[string]string{}
	sc := bufio.NewScanner(pr)
	for sc.Scan() && len(urls) < 4 {
		if f := strings.Fields(sc.Text()); len(f) >= 2 {
			urls[f[0]] = f[1]
		}
	}
	go io.Copy(io.Discard, pr)
	if urls["ca"] != ca {
		t.Fatalf("output %v", urls)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Post(urls["idlayr"]+"/oauth2/v1/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=client_credentials"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("unauthenticated token request: %d", resp.StatusCode)
	}
	if !strings.HasPrefix(urls["operator"], "http://127.0.0.1:") || !strings.HasPrefix(urls["plasgate"], "https://") {
		t.Errorf("urls %v", urls)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
