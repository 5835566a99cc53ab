// Package modem owns the Modem abstraction shared by every backend (AT over
// serial, ModemManager over D-Bus, the built-in simulator): the modem object
// the API returns, the data-session configuration netbind applies, and the
// errors a caller branches on. Backends live in sub-packages.
package modem

import (
	"context"
	"errors"
	"fmt"
)

// Info is the modem object of the public API (see spec/api.md). Field names
// are a contract: add fields, never rename one.
type Info struct {
	ID               string   `json:"id"`
	Backend          string   `json:"backend"` // "at" or "modemmanager"
	Simulated        bool     `json:"simulated"`
	State            string   `json:"state"`
	StateReason      string   `json:"state_reason,omitempty"`
	Manufacturer     string   `json:"manufacturer"`
	Model            string   `json:"model"`
	Revision         string   `json:"revision"`
	IMEI             string   `json:"imei"`
	Port             string   `json:"port,omitempty"`
	SIM              SIM      `json:"sim"`
	Network          Network  `json:"network"`
	Registration     string   `json:"registration"`
	AccessTechnology string   `json:"access_technology"`
	SignalQuality    *int     `json:"signal_quality"` // 0-100, nil when unknown
	Data             DataInfo `json:"data"`
	Busy             bool     `json:"busy"`
}

// SIM describes the card in the modem. OperatorID/OperatorName are the home
// operator (MCC+MNC from the IMSI).
type SIM struct {
	State        string   `json:"state,omitempty"` // ready, missing, pin-required, puk-required, unknown
	ICCID        string   `json:"iccid"`
	IMSI         string   `json:"imsi"`
	OperatorID   string   `json:"operator_id"`
	OperatorName string   `json:"operator_name"`
	OwnNumbers   []string `json:"own_numbers"`
}

// Network is the serving network.
type Network struct {
	OperatorID   string `json:"operator_id"`
	OperatorName string `json:"operator_name"`
}

// DataInfo is the data session as the API shows it.
type DataInfo struct {
	Connected bool      `json:"connected"`
	Interface string    `json:"interface"`
	APN       string    `json:"apn,omitempty"`
	IPv4      *IPConfig `json:"ipv4"`
	IPv6      *IPConfig `json:"ipv6"`
}

// IPConfig is one family's configuration of a bearer. Addresses are textual
// (netip-parsable) so the struct marshals as the API promises.
type IPConfig struct {
	Method  string   `json:"method,omitempty"` // static, dhcp, ppp
	Address string   `json:"address"`
	Prefix  int      `json:"prefix"`
	Gateway string   `json:"gateway,omitempty"`
	DNS     []string `json:"dns"`
	MTU     int      `json:"mtu,omitempty"`
}

// ConnectParams are what a data session is brought up with.
type ConnectParams struct {
	APN      string
	IPType   string // ipv4, ipv6, ipv4v6
	User     string
	Password string
	Auth     string // none, pap, chap, "" = any
}

// Modem is what the daemon core needs of one modem, whatever its backend.
type Modem interface {
	Info() Info
	Connect(ctx context.Context, p ConnectParams) (DataInfo, error)
	Disconnect(ctx context.Context) error
}

// EventKind says what happened to a modem.
type EventKind string

const (
	Added   EventKind = "modem.added"
	Removed EventKind = "modem.removed"
	Changed EventKind = "modem.changed"
)

// Event is a backend's notification; Info is the modem as it is now (as it
// was last, for Removed).
type Event struct {
	Kind EventKind
	Info Info
}

// Errors a caller branches on with errors.Is.
var (
	ErrGone          = errors.New("modem_gone")         // unplugged or removed during the work
	ErrNoBearer      = errors.New("no_bearer")          // data session down, no interface or address
	ErrUnsupported   = errors.New("unsupported_bearer") // e.g. a PPP bearer
	ErrNotFound      = errors.New("modem_not_found")    // unknown id or selector
	ErrSIMMissing    = errors.New("sim_missing")        // no SIM in the modem
	ErrSIMLocked     = errors.New("sim_locked")         // PIN or PUK required
	ErrNotRegistered = errors.New("not_registered")     // no network registration
)

// StateError carries a backend's reason with one of the sentinels above.
type StateError struct {
	Err    error  // a sentinel from this package
	Reason string // the backend's own words (e.g. ModemManager's failed reason, +CPIN answer)
}

func (e *StateError) Error() string {
	if e.Reason == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("%s: %s", e.Err, e.Reason)
}

func (e *StateError) Unwrap() error { return e.Err }
