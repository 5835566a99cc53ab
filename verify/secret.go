package verify

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// maxSecretFile bounds what ReadSecretFile reads: a secret (or a tru.json)
// is a few hundred bytes, so anything large is a wrong path.
const maxSecretFile = 64 << 10

// ReadSecretFile reads a file holding a secret (a client secret, a private
// key, X-Secret, a tru.json). It refuses a file that is not a regular file or
// that its group or others can access in any way (mode 0600 or stricter is
// required, as for ssh keys), with an error naming the file and its mode.
// Trailing white space (the newline an editor adds) is removed.
//
// The mode is checked on the opened file, so a rename between the check and
// the read cannot swap it.
func ReadSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secret file %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secret file %s has mode %04o: group or others can access it; chmod 0600 %s (or stricter)",
			path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("secret file %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("secret file %s: larger than %d bytes", path, maxSecretFile)
	}
	b = bytes.TrimRight(b, " \t\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("secret file %s is empty", path)
	}
	return b, nil
}
