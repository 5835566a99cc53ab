package at

import (
	"fmt"
	"strings"
	"time"
)

// readLoop is the reader goroutine: the only code that reads the port. It
// frames lines and routes each one (handleLine); when the port fails it shuts
// the engine down with the port's error as the cause.
func (e *Engine) readLoop() {
	sp := splitter{max: e.maxLine, stats: &e.stats}
	buf := make([]byte, 1024)
	for {
		n, err := e.port.Read(buf)
		n = max(0, min(n, len(buf))) // a misbehaving Reader must not make us slice out of range
		sp.feed(buf[:n], e.handleLine)
		if err != nil {
			e.shutdown(fmt.Errorf("read: %w", err))
			return
		}
	}
}

// splitter cuts the modem's byte stream into lines. It is owned by the reader
// goroutine. Modems end lines with CR, LF, CRLF or (echo after ATE0) CR CR LF,
// so any run of CR/LF ends a line and empty lines are dropped. Control bytes
// (NUL, the noise a modem emits when it boots, stray escape sequences) are
// skipped and counted rather than kept, so that "\x00OK" still reads as OK.
type splitter struct {
	max      int
	buf      []byte // never longer than max: the memory bound for a line
	overlong bool   // the current line passed max; discard up to its end
	stats    *counters
}

func (s *splitter) feed(p []byte, emit func(string)) {
	garbage := 0
	for _, b := range p {
		switch {
		case b == '\r' || b == '\n':
			if s.overlong {
				s.overlong = false
			} else if line := strings.TrimSpace(string(s.buf)); line != "" {
				emit(line)
			}
			s.buf = s.buf[:0]
		case b == '\t' || (b >= 0x20 && b != 0x7f && b != 0xff):
			if s.overlong {
				continue
			}
			if len(s.buf) >= s.max {
				// Discard the whole line rather than truncate it: a
				// truncated line could read as something it is not.
				s.overlong = true
				s.buf = s.buf[:0]
				s.stats.overlong.Add(1)
				continue
			}
			s.buf = append(s.buf, b)
		default:
			garbage++
		}
	}
	if garbage > 0 {
		s.stats.garbage.Add(uint64(garbage))
	}
}

// handleLine routes one received line; it runs on the reader goroutine.
//
// Order matters: the echo of the command in flight is dropped; a final result
// code ends the command; a line the command expects (AT+CREG? expects
// "+CREG:") is its answer even though "+CREG:" is also a URC prefix; any other
// URC goes to the subscribers, even mid-answer; the rest is the answer.
// With no command in flight, non-URC lines are stray and only counted.
func (e *Engine) handleLine(line string) {
	e.mu.Lock()
	c := e.cur
	switch {
	case c == nil:
		if e.isURC(line) {
			e.dispatch(line)
		} else {
			e.stats.stray.Add(1)
		}
	case strings.EqualFold(line, c.echo):
		c.touch()
	default:
		if final, connect, err := parseFinal(line); final {
			if connect {
				c.add(line)
			}
			e.finish(c, err)
		} else if c.expects(line) || !e.isURC(line) {
			c.add(line)
		} else {
			e.dispatch(line)
		}
	}
	e.mu.Unlock()
	e.traceLine('<', redact(line))
}

// finish ends c with the outcome of its final result code. Caller holds mu.
func (e *Engine) finish(c *call, err error) {
	e.cur = nil
	close(c.settled)
	if c.abandoned {
		return // the late answer of a timed-out command: swallowed
	}
	if err == nil && c.overflow {
		err = ErrResponseTooLong
	}
	r := result{err: err}
	if err == nil {
		r.lines = c.lines
	}
	c.result <- r // buffered, sent exactly once
}

// isURC reports whether line starts with a known URC prefix or one a
// subscriber asked for. Caller holds mu.
func (e *Engine) isURC(line string) bool {
	for _, p := range e.urcs {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	for s := range e.subs {
		for _, p := range s.prefixes {
			if strings.HasPrefix(line, p) {
				return true
			}
		}
	}
	return false
}

// dispatch hands a URC to every matching subscriber without ever blocking:
// a subscriber whose buffer is full loses the URC and the loss is counted.
// Caller holds mu.
func (e *Engine) dispatch(line string) {
	u := URC{Line: line, Time: time.Now()}
	for s := range e.subs {
		if !s.matches(line) {
			continue
		}
		select {
		case s.ch <- u:
		default:
			e.stats.urcDropped.Add(1)
		}
	}
}
