package sim

import "strconv"

// cmeError is a 27.007 +CME ERROR <err>.
type cmeError int

const (
	errNotAllowed      cmeError = 3
	errUnsupported     cmeError = 4
	errSIMNotInserted  cmeError = 10
	errSIMPIN          cmeError = 11
	errSIMPUK          cmeError = 12
	errSIMFailure      cmeError = 13
	errWrongPassword   cmeError = 16
	errInvalidIndex    cmeError = 21
	errNoService       cmeError = 30
	errIncorrectParams cmeError = 50
	errUnknown         cmeError = 100
	errGPRSUnspecified cmeError = 148
)

var cmeText = map[cmeError]string{
	errNotAllowed:      "operation not allowed",
	errUnsupported:     "operation not supported",
	errSIMNotInserted:  "SIM not inserted",
	errSIMPIN:          "SIM PIN required",
	errSIMPUK:          "SIM PUK required",
	errSIMFailure:      "SIM failure",
	errWrongPassword:   "incorrect password",
	errInvalidIndex:    "invalid index",
	errNoService:       "no network service",
	errIncorrectParams: "incorrect parameters",
	errUnknown:         "unknown",
	errGPRSUnspecified: "unspecified GPRS error",
}

func (e cmeError) Error() string { return "+CME ERROR: " + strconv.Itoa(int(e)) }

func (e cmeError) text() string {
	if t, ok := cmeText[e]; ok {
		return t
	}
	return "unknown"
}
