package config

import (
	"os"
	"testing"
)

// FuzzParse: any bytes give a configuration or an error, never a panic, and
// an accepted configuration validates.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../configs/simproof.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{"socket: {path: /x, mode: \"0600\"}\n", "checks: {queue: -1}\n", "at:\n  ports:\n    - {device: /dev/ttyUSB2, baud: fast}\n",
		"sims: [{iccid: \"8944\", phone_number: \"+447700900123\"}]\n", "&a [*a]\n", "socket: [\n", "\t\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if verr := cfg.Validate("fuzz.yaml"); verr != nil {
			t.Fatalf("accepted config does not validate: %v", verr)
		}
	})
}
