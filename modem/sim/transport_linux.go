package sim

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

type ptyTransport struct {
	m    *Modem
	link string

	// Set by start, cleared by stop; both run with Modem.life held.
	master, slave *os.File
	quit          chan struct{}
	done          chan struct{}
}

func newPTYTransport(m *Modem, link string) transport { return &ptyTransport{m: m, link: link} }

func (t *ptyTransport) start() error {
	master, slave, err := openPTY()
	if err != nil {
		return fmt.Errorf("pty for %s: %w", t.link, err)
	}
	if err := replaceSymlink(slave.Name(), t.link); err != nil {
		master.Close()
		slave.Close()
		return err
	}
	t.master, t.slave = master, slave
	t.quit, t.done = make(chan struct{}), make(chan struct{})
	go func(master *os.File, quit, done chan struct{}) {
		defer close(done)
		t.m.serve(master, quit)
	}(master, t.quit, t.done)
	return nil
}

func (t *ptyTransport) stop() {
	if t.master == nil {
		return
	}
	if target, err := os.Readlink(t.link); err == nil && target == t.slave.Name() {
		os.Remove(t.link)
	}
	close(t.quit)
	t.master.Close() // the slave side hangs up: its reader gets EIO
	t.slave.Close()
	<-t.done
	t.master, t.slave = nil, nil
}

// openPTY returns a pty whose master is non-blocking, so closing it ends a
// read in progress (creack/pty hands it over in blocking mode), and whose
// slave is raw: no echo, no CR/NL translation, no signals.
func openPTY() (master, slave *os.File, err error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.Dup(int(m.Fd()))
	m.Close()
	if err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("dup pty master: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		s.Close()
		return nil, nil, fmt.Errorf("pty master non-blocking: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := makeRaw(s); err != nil {
		master.Close()
		s.Close()
		return nil, nil, err
	}
	return master, s, nil
}

func makeRaw(f *os.File) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var terr error
	err = sc.Control(func(fd uintptr) {
		tio, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			terr = err
			return
		}
		tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		tio.Oflag &^= unix.OPOST
		tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		tio.Cflag &^= unix.CSIZE | unix.PARENB
		tio.Cflag |= unix.CS8
		tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 1, 0
		terr = unix.IoctlSetTermios(int(fd), unix.TCSETS, tio)
	})
	if err == nil {
		err = terr
	}
	if err != nil {
		return fmt.Errorf("raw mode on %s: %w", f.Name(), err)
	}
	return nil
}

// replaceSymlink points link at target atomically; it refuses to replace
// anything but a symlink.
func replaceSymlink(target, link string) error {
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("link %s: exists and is not a symlink", link)
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return fmt.Errorf("link %s: %w", link, err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", link, os.Getpid())
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", link, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", link, err)
	}
	return nil
}

type abstractTransport struct {
	m    *Modem
	name string

	// Set by start, cleared by stop; both run with Modem.life held.
	ln   net.Listener
	done chan struct{}
}

func newAbstractTransport(m *Modem, name string) transport {
	return &abstractTransport{m: m, name: name}
}

func (t *abstractTransport) start() error {
	// Go maps a leading '@' to the abstract namespace, with the address as
	// long as the name (no padding), which is what ModemManager dials.
	ln, err := net.Listen("unix", "@"+t.name)
	if err != nil {
		return fmt.Errorf("listen on abstract %q: %w", t.name, err)
	}
	t.ln, t.done = ln, make(chan struct{})
	go t.accept(ln, t.done)
	return nil
}

func (t *abstractTransport) stop() {
	if t.ln == nil {
		return
	}
	t.ln.Close()
	<-t.done
	t.ln = nil
}

// accept serves one connection at a time, the newest.
func (t *abstractTransport) accept(ln net.Listener, done chan struct{}) {
	defer close(done)
	var cur net.Conn
	var curQuit, curDone chan struct{}
	end := func() {
		if cur != nil {
			close(curQuit)
			cur.Close()
			<-curDone
			cur = nil
		}
	}
	defer end()
	for {
		conn, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of descriptors and the like: try again shortly.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		end()
		cur, curQuit, curDone = conn, make(chan struct{}), make(chan struct{})
		go func(conn net.Conn, quit, done chan struct{}) {
			defer close(done)
			t.m.serve(conn, quit)
		}(conn, curQuit, curDone)
	}
}
