package sim

import (
	"errors"
	"fmt"
)

// transport is one way into the modem (a pty, an abstract socket). start
// and stop are called with Modem.life held; stop waits for every goroutine
// the transport started.
type transport interface {
	start() error
	stop()
}

// ErrClosed is returned when a closed modem is asked for a transport.
var ErrClosed = errors.New("sim: modem closed")

// ServePTY serves the modem on a new pseudo-terminal in raw mode and makes
// link a symlink to its slave, so a serial library opens a real tty at a
// stable path. An existing symlink at link is replaced; any other file
// there is an error. The slave stays open inside the modem, so clients may
// open and close it at will; what they leave unread stays buffered, as on
// a real port.
func (m *Modem) ServePTY(link string) (err error) {
	return m.addTransport(newPTYTransport(m, link))
}

// ListenAbstract serves the modem on the abstract Unix stream socket whose
// address is NUL followed by the whole name, unpadded (ModemManager's port
// "abstract:sim0" is name "abstract:sim0"). One connection is served at a
// time: a new one replaces the old, which is closed (ModemManager closes
// and reopens a port; a client that vanished must not keep it busy). Each
// connection starts with the default port settings.
func (m *Modem) ListenAbstract(name string) error {
	return m.addTransport(newAbstractTransport(m, name))
}

func (m *Modem) addTransport(t transport) error {
	m.life.Lock()
	defer m.life.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.plugged {
		if err := t.start(); err != nil {
			return err
		}
	}
	m.transports = append(m.transports, t)
	return nil
}

// Unplug takes the modem off every transport, as pulling it out of USB
// does: pty masters close (a reader of the slave gets an error or EOF),
// symlinks go, abstract listeners and their connections close. The modem
// loses power: contexts go down and the radio settings reset; identity,
// faults and bearer stay.
func (m *Modem) Unplug() {
	m.life.Lock()
	defer m.life.Unlock()
	if !m.plugged || m.closed {
		return
	}
	m.plugged = false
	for _, t := range m.transports {
		t.stop()
	}
	m.mu.Lock()
	m.st.powerOn()
	m.mu.Unlock()
}

// Plug brings every transport back: the same link paths (to a new pty)
// and the same abstract names.
func (m *Modem) Plug() error {
	m.life.Lock()
	defer m.life.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.plugged {
		return nil
	}
	m.plugged = true
	var errs []error
	for _, t := range m.transports {
		if err := t.start(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("plug: %w", errors.Join(errs...))
	}
	return nil
}

// Close ends every transport and goroutine of the modem; it is final.
func (m *Modem) Close() error {
	m.life.Lock()
	defer m.life.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	if m.plugged {
		for _, t := range m.transports {
			t.stop()
		}
	}
	m.transports = nil
	return nil
}
