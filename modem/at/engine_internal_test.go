package at

import (
	"reflect"
	"testing"
)

func TestExpectPrefixes(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{"AT+CREG?", []string{"+CREG:"}},
		{"at+creg?", []string{"+CREG:"}},
		{"AT+CGDCONT=?", []string{"+CGDCONT:"}},
		{"AT+CGSN", []string{"+CGSN:"}},
		{"AT+CREG=2", nil}, // set: a +CREG: during it is a URC
		{"AT+CREG?;+CGREG?", []string{"+CREG:", "+CGREG:"}},
		{"AT+CREG=2;+CREG?", []string{"+CREG:"}},
		{"AT%IPDPACT?", []string{"%IPDPACT:"}},
		{"AT%IPDPACT=2,1", nil},
		{"AT^SYSCFGEX?", []string{"^SYSCFGEX:"}},
		{"AT*CNTI?", []string{"*CNTI:"}},
		{"ATI", nil},
		{"ATE0", nil},
		{"ATD*99***1#", nil},
		{"AT+", nil},
		{"AT", nil},
		{"", nil},
		{"+CREG?", nil}, // not an AT command line
	} {
		if got := expectPrefixes(tc.cmd); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("expectPrefixes(%q) = %q, want %q", tc.cmd, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`AT+CPIN="1234"`, `AT+CPIN=<redacted>`},
		{`at+cpin="1234","5678"`, `at+cpin=<redacted>`},
		{`AT+CPIN?`, `AT+CPIN?`},
		{`AT+CLCK="SC",1,"1234"`, `AT+CLCK=<redacted>`},
		{`AT+CGAUTH=1,1,"user","secret"`, `AT+CGAUTH=<redacted>`},
		{`AT+QICSGP=1,1,"internet","u","p",1`, `AT+QICSGP=<redacted>`},
		{`AT+CSIM=26,"0020000108313233FFFFFFFFFF"`, `AT+CSIM=<redacted>`},
		{`AT+CFUN=1;+CPIN="1234"`, `AT+CFUN=1;+CPIN=<redacted>`},
		{`AT+CGDCONT=1,"IP","internet"`, `AT+CGDCONT=1,"IP","internet"`},
		// Non-ASCII before the marker must not shift the cut.
		{"ıı+CPIN=1234", "ıı+CPIN=<redacted>"},
	} {
		if got := redact(tc.in); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
