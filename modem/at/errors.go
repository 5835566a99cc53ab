package at

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Lifecycle errors. Command wraps them with the command as context; branch
// with errors.Is.
var (
	// ErrClosed: the engine stopped, because Close was called or because the
	// port died. In the latter case the error also wraps the port's error
	// (io.EOF, EIO after an unplug, ...).
	ErrClosed = errors.New("at: engine closed")
	// ErrTimeout: no final result code arrived in time. The error also wraps
	// context.DeadlineExceeded.
	ErrTimeout = errors.New("at: command timed out")
	// ErrResponseTooLong: the modem sent more information lines than
	// MaxResponseLines before the final result code; the lines are dropped.
	ErrResponseTooLong = errors.New("at: response too long")
)

// Final result codes other than OK and CONNECT, as the modem reports them.
var (
	ErrError      = errors.New("ERROR") // also vendor spellings such as COMMAND NOT SUPPORT
	ErrNoCarrier  = errors.New("NO CARRIER")
	ErrNoDialtone = errors.New("NO DIALTONE")
	ErrBusy       = errors.New("BUSY")
	ErrNoAnswer   = errors.New("NO ANSWER")
)

// CMEError is a "+CME ERROR: <err>" final result (3GPP TS 27.007 §9.2).
// Code is the numeric value, or -1 when the modem answered in verbose form
// (AT+CMEE=2); Text is what followed the colon either way.
type CMEError struct {
	Code int
	Text string
}

func (e *CMEError) Error() string { return "+CME ERROR: " + e.Text }

// CMSError is a "+CMS ERROR: <err>" final result (3GPP TS 27.005 §3.2.5),
// shaped like CMEError.
type CMSError struct {
	Code int
	Text string
}

func (e *CMSError) Error() string { return "+CMS ERROR: " + e.Text }

// parseFinal says whether line is a final result code and, if so, what it
// means: err is nil for OK and CONNECT (connect is then true).
func parseFinal(line string) (final, connect bool, err error) {
	switch line {
	case "OK":
		return true, false, nil
	case "CONNECT":
		return true, true, nil
	case "ERROR":
		return true, false, ErrError
	case "NO CARRIER":
		return true, false, ErrNoCarrier
	case "NO DIALTONE", "NO DIAL TONE":
		return true, false, ErrNoDialtone
	case "BUSY":
		return true, false, ErrBusy
	case "NO ANSWER":
		return true, false, ErrNoAnswer
	case "COMMAND NOT SUPPORT", "TOO MANY PARAMETERS":
		// Huawei/ZTE spellings of ERROR; ModemManager treats them alike.
		return true, false, fmt.Errorf("%w (%s)", ErrError, line)
	}
	switch {
	case strings.HasPrefix(line, "CONNECT "):
		return true, true, nil
	case strings.HasPrefix(line, "+CME ERROR:"):
		code, text := parseErrValue(line[len("+CME ERROR:"):])
		return true, false, &CMEError{Code: code, Text: text}
	case strings.HasPrefix(line, "+CMS ERROR:"):
		code, text := parseErrValue(line[len("+CMS ERROR:"):])
		return true, false, &CMSError{Code: code, Text: text}
	}
	return false, false, nil
}

func parseErrValue(s string) (int, string) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return n, s
	}
	return -1, s
}
