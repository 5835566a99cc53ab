package idlayr

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/simproof/simproof/verify"
)

// Credentials are an IDlayr project's client credentials.
type Credentials struct {
	ClientID      string
	ClientSecret  string
	DataResidency string // "eu", "in", "us" ...: the API host's first label
}

// String never shows the secret.
func (c Credentials) String() string {
	return fmt.Sprintf("idlayr client %s (%s)", c.ClientID, c.DataResidency)
}

// GoString keeps %#v from printing the secret too.
func (c Credentials) GoString() string { return c.String() }

// trueJSON is the part of the tru.json project file the IDlayr CLI writes
// that simproof reads.
type truJSON struct {
	DataResidency string `json:"data_residency"`
	Credentials   []struct {
		ClientID      string `json:"client_id"`
		ClientSecret  string `json:"client_secret"`
		DataResidency string `json:"data_residency"`
	} `json:"credentials"`
}

// LoadCredentials reads credentials[0] and data_residency (top level, or in
// the credential) from a tru.json project file. The file holds the client
// secret, so it must not be group- or world-readable (verify.ReadSecretFile).
func LoadCredentials(path string) (Credentials, error) {
	b, err := verify.ReadSecretFile(path)
	if err != nil {
		return Credentials{}, err
	}
	var f truJSON
	if err := json.Unmarshal(b, &f); err != nil {
		// The syntax error's offset is enough; its text could quote the secret.
		if se, ok := err.(*json.SyntaxError); ok {
			return Credentials{}, fmt.Errorf("idlayr credentials %s: not JSON (offset %d)", path, se.Offset)
		}
		return Credentials{}, fmt.Errorf("idlayr credentials %s: unexpected shape", path)
	}
	if len(f.Credentials) == 0 {
		return Credentials{}, fmt.Errorf("idlayr credentials %s: no credentials[0]", path)
	}
	c := f.Credentials[0]
	cr := Credentials{ClientID: c.ClientID, ClientSecret: c.ClientSecret, DataResidency: f.DataResidency}
	if cr.DataResidency == "" {
		cr.DataResidency = c.DataResidency
	}
	if cr.ClientID == "" || cr.ClientSecret == "" {
		return Credentials{}, fmt.Errorf("idlayr credentials %s: credentials[0] lacks client_id or client_secret", path)
	}
	return cr, nil
}

// CredentialsFromConfig builds credentials from the configuration's
// client_id and data_residency and a client_secret_file.
func CredentialsFromConfig(clientID, secretFile, dataResidency string) (Credentials, error) {
	if clientID == "" {
		return Credentials{}, fmt.Errorf("idlayr: client_id is empty")
	}
	b, err := verify.ReadSecretFile(secretFile)
	if err != nil {
		return Credentials{}, fmt.Errorf("idlayr client_secret_file: %w", err)
	}
	return Credentials{ClientID: clientID, ClientSecret: strings.TrimSpace(string(b)), DataResidency: dataResidency}, nil
}
