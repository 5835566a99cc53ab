//go:build !linux

package sim

import (
	"errors"
	"fmt"
)

// errNoTransport: ptys in raw mode and abstract sockets are done for Linux
// only, where simproof runs.
var errNoTransport = errors.New("sim: transport supported on Linux only")

type noTransport struct{ what string }

func (t noTransport) start() error { return fmt.Errorf("%s: %w", t.what, errNoTransport) }
func (noTransport) stop()          {}

func newPTYTransport(_ *Modem, link string) transport { return noTransport{"pty " + link} }

func newAbstractTransport(_ *Modem, name string) transport {
	return noTransport{"abstract " + name}
}
