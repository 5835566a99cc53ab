package at_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/simproof/simproof/modem/at"
)

// FuzzReader feeds arbitrary bytes as the modem's output while commands run
// and subscribers listen (one of them never reads). Whatever the bytes, the
// engine must not panic or hang, must hand out only well-formed lines no
// longer than MaxLine, must never show the PIN, and must notice the
// hang-up. The seed corpus is in testdata/fuzz/FuzzReader.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxLine = 64
		const pinCmd = `AT+CPIN="1234"`
		checkLine := func(where, l string) {
			bad := l == "" || len(l) > maxLine || l != strings.TrimSpace(l)
			for i := 0; i < len(l); i++ {
				if b := l[i]; (b < 0x20 && b != '\t') || b == 0x7f || b == 0xff {
					bad = true
				}
			}
			if bad {
				t.Errorf("%s: malformed line %q", where, l)
			}
		}
		// One input in eight runs with commands that time out at once, to
		// drive the abandon and resync paths with arbitrary late answers.
		timeout := wait
		if len(data) > 0 && data[0]%8 == 0 {
			timeout = time.Millisecond
		}
		engSide, modemSide := net.Pipe()
		e := at.New(engSide, at.Options{
			Timeout: wait, MaxLine: maxLine, URCBuffer: 2, ResyncQuiet: 2 * time.Millisecond,
			Trace: func(dir byte, l string) {
				if dir == '>' && strings.Contains(l, "1234") {
					t.Errorf("trace shows the PIN: %q", l)
				}
				if dir == '<' {
					checkLine("trace", l)
				}
			},
		})
		defer e.Close()
		urcs, _ := e.Subscribe()
		_, _ = e.Subscribe("+CREG:", "RING") // never read

		// The modem: swallow what the engine writes; once the first command
		// is in, send data in small pieces, then hang up.
		firstCmd := make(chan struct{})
		go func() {
			buf := make([]byte, 256)
			seen := false
			for {
				n, err := modemSide.Read(buf)
				if !seen && bytes.IndexByte(buf[:n], '\r') >= 0 {
					seen = true
					close(firstCmd)
				}
				if err != nil {
					return
				}
			}
		}()
		go func() {
			defer modemSide.Close()
			select {
			case <-firstCmd:
			case <-time.After(wait):
				return
			}
			step := 1 + len(data)%7
			for p := data; len(p) > 0; {
				n := min(step, len(p))
				if _, err := modemSide.Write(p[:n]); err != nil {
					return
				}
				p = p[n:]
			}
		}()

		urcsDone := make(chan struct{})
		go func() {
			defer close(urcsDone)
			for u := range urcs {
				checkLine("urc", u.Line)
			}
		}()
		cmdsDone := make(chan struct{})
		go func() {
			defer close(cmdsDone)
			for _, cmd := range []string{"AT+CREG?", pinCmd, "ATD*99#", "AT+CGSN", "ATI"} {
				lines, err := e.CommandTimeout(context.Background(), cmd, timeout)
				for _, l := range lines {
					checkLine(cmd, l)
				}
				if len(lines) > at.MaxResponseLines {
					t.Errorf("%s: %d lines", cmd, len(lines))
				}
				if err != nil && strings.Contains(err.Error(), pinCmd) {
					t.Errorf("error shows the PIN: %q", err)
				}
				if errors.Is(err, at.ErrClosed) {
					return
				}
			}
		}()
		for what, ch := range map[string]<-chan struct{}{
			"commands": cmdsDone, "engine": e.Done(), "subscriber": urcsDone,
		} {
			select {
			case <-ch:
			case <-time.After(wait):
				t.Fatalf("%s still running after the hang-up", what)
			}
		}
		if !errors.Is(e.Err(), at.ErrClosed) {
			t.Errorf("Err() = %v after hang-up", e.Err())
		}
	})
}
