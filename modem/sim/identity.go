package sim

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// Identity is what the modem and its SIM say about themselves.
type Identity struct {
	Manufacturer string
	Model        string
	Revision     string
	IMEI         string
	ICCID        string
	IMSI         string
	MSISDN       string // E.164 with a leading +; empty: +CNUM lists no number
	OperatorID   string // MCC+MNC, home and serving network alike
	OperatorName string
	SPN          string // service provider name on the SIM (EF_SPN)
	RSSI         int    // +CSQ 0..31, or 99 (unknown)
	AcT          int    // 27.007 <AcT>: 0 gsm, 2 utran, 7 e-utran, 13 nr ...

	// PIN and PUK are what AT+CPIN accepts while the PINRequired or
	// PUKRequired fault is set; empty means "1234" and "12345678".
	PIN, PUK string
}

// DefaultIdentity returns distinct, valid-looking values for modem n
// (distinct for n in 0..999; the MSISDN range has only 1000 numbers): an
// IMEI and an ICCID with correct Luhn check digits, an IMSI on the test
// network 001/01, and an MSISDN in Ofcom's drama range +447700900NNN.
func DefaultIdentity(n int) Identity {
	if n < 0 {
		n = -n
	}
	return Identity{
		Manufacturer: "SimVendor",
		Model:        "SimModem LTE",
		Revision:     "SIMFW_1.0.0",
		IMEI:         WithLuhn(fmt.Sprintf("35693803%06d", n%1000000)),
		ICCID:        WithLuhn(fmt.Sprintf("89440000000%07d", n%10000000)),
		IMSI:         fmt.Sprintf("00101%010d", n),
		MSISDN:       fmt.Sprintf("+447700900%03d", n%1000),
		OperatorID:   "00101",
		OperatorName: "Test Operator",
		SPN:          "TestNet",
		RSSI:         20,
		AcT:          7,
	}
}

// WithLuhn appends the Luhn check digit to a string of decimal digits.
func WithLuhn(digits string) string {
	sum := 0
	double := true // the digit left of the check digit is doubled
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return digits + string(rune('0'+(10-sum%10)%10))
}

// BearerConfig is what the network assigns to every active PDP context.
// Zero families are absent: a context of type IP on a bearer without IPv4
// cannot be activated.
type BearerConfig struct {
	APN      string       // reported by +CGCONTRDP when the context names none
	IPv4     netip.Prefix // address and prefix length
	Gateway4 netip.Addr
	DNS4     []netip.Addr
	IPv6     netip.Prefix
	Gateway6 netip.Addr
	DNS6     []netip.Addr
}

// DefaultBearer returns an IPv4 bearer for modem n from the carrier range
// 100.64.0.0/10: 100.64.(n+1).2/24, gateway .1, DNS .53 and .54 (modem 0
// gets the addresses of the reference dialogue).
func DefaultBearer(n int) BearerConfig {
	if n < 0 {
		n = -n
	}
	k := n + 1
	b2, b3 := byte(64+(k/256)%64), byte(k%256)
	a := func(last byte) netip.Addr { return netip.AddrFrom4([4]byte{100, b2, b3, last}) }
	return BearerConfig{
		APN:      "internet",
		IPv4:     netip.PrefixFrom(a(2), 24),
		Gateway4: a(1),
		DNS4:     []netip.Addr{a(53), a(54)},
	}
}

// swapNibbles renders digits the way a SIM stores BCD: two digits a byte,
// the first in the low nibble, padded with F.
func swapNibbles(digits string) string {
	if len(digits)%2 == 1 {
		digits += "F"
	}
	var b strings.Builder
	for i := 0; i+1 < len(digits); i += 2 {
		b.WriteByte(digits[i+1])
		b.WriteByte(digits[i])
	}
	return b.String()
}

// efICCID is the content of EF_ICCID (2FE2): 10 bytes of swapped BCD.
func efICCID(iccid string) string {
	s := swapNibbles(iccid)
	for len(s) < 20 {
		s += "FF"
	}
	return s
}

// efIMSI is the content of EF_IMSI (6F07): a length byte, then the parity
// nibble (9 odd, 1 even digit count) and the digits, swapped.
func efIMSI(imsi string) string {
	parity := "1"
	if len(imsi)%2 == 1 {
		parity = "9"
	}
	s := swapNibbles(parity + imsi)
	s = fmt.Sprintf("%02X", len(s)/2) + s
	for len(s) < 18 {
		s += "FF"
	}
	return s
}

// efAD is EF_AD (6FAD): the fourth byte is the MNC length ModemManager uses
// to split the IMSI into MCC and MNC.
func efAD(operatorID string) string {
	mncLen := 2
	if len(operatorID) == 6 {
		mncLen = 3
	}
	return fmt.Sprintf("000000%02X", mncLen)
}

// efSPN is EF_SPN (6F46): a display-condition byte and 16 bytes of name in
// the GSM default alphabet (ASCII for the letters a name uses), FF-padded.
func efSPN(spn string) string {
	b := make([]byte, 17)
	for i := range b {
		b[i] = 0xFF
	}
	b[0] = 0x01
	for i := 0; i < len(spn) && i < 16; i++ {
		c := spn[i]
		if c >= 0x80 {
			c = '?'
		}
		b[1+i] = c
	}
	return strings.ToUpper(hex.EncodeToString(b))
}
