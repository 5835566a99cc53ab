package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simproof/simproof/config"
	"github.com/simproof/simproof/modem/at"
)

func TestProvidersFromCredentialsDirectory(t *testing.T) {
	creds := t.TempDir()
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	write := func(name, body string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(creds, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(creds, name), mode)
	}
	write("plasgate.key", "pk-0123456789abcdef\\n", 0o400)
	write("plasgate.secret", "$5$rounds=535000$abc\\n", 0o400)
	write("tru.json", `{"credentials":[{"client_id":"id","client_secret":"s+/=:","data_residency":"eu"}]}`, 0o400)
	cfg := config.Default()
	cfg.Providers.PlasGate.PrivateKeyFile = "plasgate.key"
	cfg.Providers.PlasGate.SecretFile = "plasgate.secret"
	cfg.Providers.PlasGate.RedirectURI = "https://app.example.test/cb"
	// The default /etc/simproof/tru.json does not exist here: the
	// credential of the same name stands in for it.
	cfg.Providers.IDlayr.CredentialsFile = "/nonexistent/simproof/tru.json"
	ps, status := buildProviders(cfg)
	if ps["plasgate"] == nil || ps["idlayr"] == nil {
		t.Fatalf("providers %v, status %+v", ps, status)
	}

	// A secret readable by others is refused, and health says which file.
	write("loose.key", "pk", 0o644)
	cfg.Providers.PlasGate.PrivateKeyFile = "loose.key"
	ps, status = buildProviders(cfg)
	if ps["plasgate"] != nil {
		t.Fatal("a world-readable private key was accepted")
	}
	found := false
	for _, st := range status {
		if st.Name == "provider plasgate" && st.State == "failed" && strings.Contains(st.Error, "loose.key") {
			found = true
		}
	}
	if !found {
		t.Errorf("status %+v does not name the loose file", status)
	}
}

func TestConfigKnowsEveryATProfile(t *testing.T) {
	if got, want := strings.Join(config.ATProfiles, ","), strings.Join(at.Profiles(), ","); got != want {
		t.Errorf("config.ATProfiles %s, modem/at has %s", got, want)
	}
}
