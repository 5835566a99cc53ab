package at

import (
	"errors"
	"testing"
)

func TestParseFinal(t *testing.T) {
	for _, tc := range []struct {
		line           string
		final, connect bool
		err            error // sentinel, or a *CMEError / *CMSError to compare
	}{
		{line: "OK", final: true},
		{line: "CONNECT", final: true, connect: true},
		{line: "CONNECT 150000000", final: true, connect: true},
		{line: "ERROR", final: true, err: ErrError},
		{line: "COMMAND NOT SUPPORT", final: true, err: ErrError},
		{line: "NO CARRIER", final: true, err: ErrNoCarrier},
		{line: "NO DIALTONE", final: true, err: ErrNoDialtone},
		{line: "NO DIAL TONE", final: true, err: ErrNoDialtone},
		{line: "BUSY", final: true, err: ErrBusy},
		{line: "NO ANSWER", final: true, err: ErrNoAnswer},
		{line: "+CME ERROR: 10", final: true, err: &CMEError{Code: 10, Text: "10"}},
		{line: "+CME ERROR:10", final: true, err: &CMEError{Code: 10, Text: "10"}},
		{line: "+CME ERROR: SIM PIN required", final: true, err: &CMEError{Code: -1, Text: "SIM PIN required"}},
		{line: "+CME ERROR: -3", final: true, err: &CMEError{Code: -1, Text: "-3"}},
		{line: "+CME ERROR:", final: true, err: &CMEError{Code: -1, Text: ""}},
		{line: "+CMS ERROR: 500", final: true, err: &CMSError{Code: 500, Text: "500"}},
		{line: "+CMS ERROR: unknown error", final: true, err: &CMSError{Code: -1, Text: "unknown error"}},
		{line: "OKAY"},
		{line: "CONNECTED"},
		{line: "+CREG: 1"},
		{line: "ok"},
		{line: "RING"},
	} {
		final, connect, err := parseFinal(tc.line)
		if final != tc.final || connect != tc.connect {
			t.Errorf("%q: final %v connect %v, want %v %v", tc.line, final, connect, tc.final, tc.connect)
		}
		switch want := tc.err.(type) {
		case nil:
			if err != nil {
				t.Errorf("%q: err %v, want nil", tc.line, err)
			}
		case *CMEError:
			var got *CMEError
			if !errors.As(err, &got) || *got != *want {
				t.Errorf("%q: err %#v, want %#v", tc.line, err, want)
			}
		case *CMSError:
			var got *CMSError
			if !errors.As(err, &got) || *got != *want {
				t.Errorf("%q: err %#v, want %#v", tc.line, err, want)
			}
		default:
			if !errors.Is(err, want) {
				t.Errorf("%q: err %v, want %v", tc.line, err, want)
			}
		}
	}
}
