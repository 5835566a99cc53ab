package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/verify"
	"github.com/simproof/simproof/verify/idlayr"
	"github.com/simproof/simproof/verify/plasgate"
)

// buildProviders configures the providers whose credentials are present. A
// provider with no credentials configured is simply absent; one whose
// credentials are configured but unusable (missing file, loose mode) is
// reported, so health says why checks with it are refused.
func buildProviders(cfg config.Config) (map[string]verify.Provider, []BackendStatus) {
	out := map[string]verify.Provider{}
	var status []BackendStatus
	roots, err := verify.CertPool(cfg.TLS.CAFile)
	if err != nil {
		return out, []BackendStatus{{Name: "tls", State: "failed", Error: err.Error()}}
	}
	report := func(name string, err error) {
		if err == nil {
			status = append(status, BackendStatus{Name: "provider " + name, State: "running"})
			return
		}
		status = append(status, BackendStatus{Name: "provider " + name, State: "failed", Error: verify.RedactText(err.Error())})
	}
	c := cfg.Checks

	if id := cfg.Providers.IDlayr; id.ClientID != "" || fileExists(SecretPath(id.CredentialsFile)) {
		p, err := func() (verify.Provider, error) {
			var creds idlayr.Credentials
			var err error
			if id.ClientID != "" {
				creds, err = idlayr.CredentialsFromConfig(id.ClientID, SecretPath(id.ClientSecretFile), id.DataResidency)
			} else {
				creds, err = idlayr.LoadCredentials(SecretPath(id.CredentialsFile))
				if err == nil && id.DataResidency != "" {
					creds.DataResidency = id.DataResidency
				}
			}
			if err != nil {
				return nil, err
			}
			return idlayr.New(idlayr.Config{Credentials: creds, BaseURL: id.BaseURL, Version: id.Version,
				RedirectURL: id.RedirectURL, HTTPClient: verify.NewServerClient(roots), TTLCap: c.TTLCap, Preflight: id.CoveragePreflight,
				MaxHops: c.HopLimit, HopTimeout: c.HopTimeout})
		}()
		if err == nil {
			out["idlayr"] = p
		}
		report("idlayr", err)
	}
	if pg := cfg.Providers.PlasGate; pg.PrivateKeyFile != "" || pg.SecretFile != "" {
		p, err := func() (verify.Provider, error) {
			key, err := readSecret(pg.PrivateKeyFile, "providers.plasgate.private_key_file")
			if err != nil {
				return nil, err
			}
			secret, err := readSecret(pg.SecretFile, "providers.plasgate.secret_file")
			if err != nil {
				return nil, err
			}
			return plasgate.New(plasgate.Config{BaseURL: pg.BaseURL, PrivateKey: key, Secret: secret,
				RedirectURI: pg.RedirectURI, Scope: pg.Scope, ExchangePath: pg.ExchangePath,
				PrivateKeyInQuery: pg.KeyInQuery, IgnoreState: !pg.VerifyState, HTTPClient: verify.NewServerClient(roots),
				MaxHops: c.HopLimit, HopTimeout: c.HopTimeout})
		}()
		if err == nil {
			out["plasgate"] = p
		}
		report("plasgate", err)
	}
	return out, status
}

func readSecret(path, key string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("%s is not set", key)
	}
	b, err := verify.ReadSecretFile(SecretPath(path))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", key, path)
	}
	return s, nil
}

func fileExists(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Stat(path)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}

// SecretPath resolves a secret file setting against systemd's credentials
// (LoadCredential=): a bare name ("plasgate.key") is looked up in
// $CREDENTIALS_DIRECTORY, and so is an absolute path that does not exist
// but whose base name was passed as a credential. Everything else is used
// as written.
func SecretPath(p string) string {
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if p == "" || dir == "" {
		return p
	}
	if !strings.Contains(p, "/") {
		return filepath.Join(dir, p)
	}
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		if c := filepath.Join(dir, filepath.Base(p)); fileExists(c) {
			return c
		}
	}
	return p
}
