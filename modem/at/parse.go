package at

import (
	"encoding/hex"
	"strconv"
	"strings"
)

// Parsers for the answers the backend reads. Pure functions over the
// information lines Command returns, so they are table-tested without a port.

// stripPrefix removes a "+XYZ:" style prefix and surrounding quotes/space.
func stripPrefix(line, prefix string) string {
	s := strings.TrimSpace(line)
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		s = strings.TrimSpace(s[len(prefix):])
	}
	// Unquote a single quoted value; a quoted list is left for splitFields.
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' && !strings.Contains(s[1:len(s)-1], `"`) {
		s = s[1 : len(s)-1]
	}
	return s
}

// firstLine returns the value of the first line that carries prefix, or,
// for modems that answer without it, the first clean line. Line noise that
// survived framing (bytes outside printable ASCII) is never taken for an
// answer.
func firstLine(lines []string, prefix string) string {
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if len(t) >= len(prefix) && strings.EqualFold(t[:len(prefix)], prefix) && printable(t) {
			return stripPrefix(t, prefix)
		}
	}
	for _, l := range lines {
		if v := stripPrefix(l, prefix); v != "" && printable(v) {
			return v
		}
	}
	return ""
}

// printable says whether s is printable ASCII, as AT answers are (the IRA
// and GSM character sets).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}

// splitFields splits a comma-separated answer, honouring double quotes.
func splitFields(s string) []string {
	var out []string
	var b strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ',' && !quoted:
			out = append(out, strings.TrimSpace(b.String()))
			b.Reset()
		default:
			b.WriteRune(r)
		}
	}
	return append(out, strings.TrimSpace(b.String()))
}

func digitsOnly(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseIMEI accepts "356938035643809", "+CGSN: 356938035643809" and
// "+CGSN: \"356938035643809\"", and rejects anything not 14–17 digits.
func parseIMEI(lines []string) string {
	v := firstLine(lines, "+CGSN:")
	v = strings.TrimPrefix(v, "IMEI:")
	v = strings.Trim(strings.TrimSpace(v), `"`)
	if digitsOnly(v) && len(v) >= 14 && len(v) <= 17 {
		return v
	}
	return ""
}

// parseICCID reads an ICCID from +CCID/+QCCID/+ICCID/^ICCID answers. ICCIDs
// are 19–20 digits; some modems append an F filler.
func parseICCID(lines []string) string {
	for _, l := range lines {
		v := l
		for _, p := range []string{"+CCID:", "+QCCID:", "+ICCID:", "^ICCID:", "ICCID:"} {
			v = stripPrefix(v, p)
		}
		v = strings.TrimRight(strings.ToUpper(strings.Trim(strings.TrimSpace(v), `"`)), "F")
		if !printable(v) {
			continue
		}
		if digitsOnly(v) && len(v) >= 18 && len(v) <= 22 {
			return v
		}
	}
	return ""
}

// parseCRSM returns sw1, sw2 and the data of a +CRSM answer.
func parseCRSM(lines []string) (sw1, sw2 int, data string, ok bool) {
	v := firstLine(lines, "+CRSM:")
	f := splitFields(v)
	if len(f) < 2 {
		return 0, 0, "", false
	}
	var err1, err2 error
	sw1, err1 = strconv.Atoi(f[0])
	sw2, err2 = strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 0, 0, "", false
	}
	if len(f) > 2 {
		data = f[2]
	}
	return sw1, sw2, data, true
}

// swapNibbles undoes EF_ICCID's BCD nibble order ("98101430..." → "89014103...")
// and drops F fillers.
func swapNibbles(s string) string {
	b := []byte(strings.ToUpper(s))
	for i := 0; i+1 < len(b); i += 2 {
		b[i], b[i+1] = b[i+1], b[i]
	}
	return strings.TrimRight(string(b), "F")
}

// parseSPN decodes EF_SPN (display byte, then the name in the GSM default
// alphabet, FF-padded). Only the ASCII-compatible subset is kept; that covers
// operator names in practice.
func parseSPN(data string) string {
	raw, err := hex.DecodeString(data)
	if err != nil || len(raw) < 2 {
		return ""
	}
	var b strings.Builder
	for _, c := range raw[1:] {
		if c == 0xFF {
			break
		}
		if c >= 0x20 && c < 0x7F {
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}

// parseCNUM returns the E.164 numbers of +CNUM lines ("","+4477…",145).
func parseCNUM(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(l)), "+CNUM:") {
			continue
		}
		f := splitFields(stripPrefix(l, "+CNUM:"))
		if len(f) < 2 || f[1] == "" {
			continue
		}
		num := f[1]
		if len(f) > 2 && f[2] == "145" && !strings.HasPrefix(num, "+") {
			num = "+" + num
		}
		if strings.HasPrefix(num, "+") && digitsOnly(num[1:]) {
			out = append(out, num)
		}
	}
	return out
}

// simState maps +CPIN? answers to api.md's SIM states.
func simState(lines []string) string {
	switch v := strings.ToUpper(firstLine(lines, "+CPIN:")); {
	case v == "READY":
		return "ready"
	case strings.Contains(v, "PUK"):
		return "puk-required"
	case strings.Contains(v, "PIN"):
		return "pin-required"
	case v == "":
		return "unknown"
	default:
		return strings.ToLower(v)
	}
}

// signalQuality maps +CSQ's rssi (0–31, 99 unknown) to 0–100.
func signalQuality(lines []string) *int {
	f := splitFields(firstLine(lines, "+CSQ:"))
	rssi, err := strconv.Atoi(f[0])
	if err != nil || rssi < 0 || rssi > 31 {
		return nil
	}
	q := rssi * 100 / 31
	return &q
}

// registrationNames are ModemManager's names for 27.007 <stat>.
var registrationNames = map[int]string{
	0: "idle", 1: "home", 2: "searching", 3: "denied", 4: "unknown", 5: "roaming",
	6: "home-sms-only", 7: "roaming-sms-only", 8: "emergency-only",
	9: "home-csfb-not-preferred", 10: "roaming-csfb-not-preferred",
}

// registrationRank orders states so the best of CS, PS and EPS wins: a
// data-only SIM is registered when PS or EPS is.
var registrationRank = map[string]int{
	"home": 9, "roaming": 9, "home-csfb-not-preferred": 8, "roaming-csfb-not-preferred": 8,
	"home-sms-only": 7, "roaming-sms-only": 7, "emergency-only": 5, "searching": 4,
	"denied": 3, "idle": 2, "unknown": 1, "": 0,
}

// accessTechNames are ModemManager's names for 27.007 <AcT>.
var accessTechNames = map[int]string{
	0: "gsm", 1: "gsm-compact", 2: "umts", 3: "edge", 4: "hsdpa", 5: "hsupa", 6: "hspa",
	7: "lte", 8: "gsm", 9: "lte-nb-iot", 10: "lte", 11: "5gnr", 12: "5gnr", 13: "5gnr",
}

// parseReg reads a +CREG?/+CGREG?/+CEREG? answer or URC. The answer has
// <n>,<stat>[,...]; the URC drops <n>. With n=2 the fields after stat are
// lac/tac, ci and AcT (CEREG/CGREG may have rac in between for some
// vendors; AcT is taken as the last numeric field of a long answer).
func parseReg(line, prefix string, isURC bool) (stat string, act string, ok bool) {
	f := splitFields(stripPrefix(line, prefix))
	idx := 1
	if isURC {
		idx = 0
	}
	if len(f) <= idx {
		return "", "", false
	}
	n, err := strconv.Atoi(f[idx])
	if err != nil {
		return "", "", false
	}
	stat = registrationNames[n]
	if stat == "" {
		stat = "unknown"
	}
	if len(f) >= idx+4 {
		if a, err := strconv.Atoi(f[idx+3]); err == nil {
			act = accessTechNames[a]
		}
	}
	return stat, act, true
}

// parseCOPS reads +COPS? → (mode, format, operator, AcT).
func parseCOPS(lines []string) (format int, oper string, act string, ok bool) {
	f := splitFields(firstLine(lines, "+COPS:"))
	if len(f) < 3 {
		return 0, "", "", false
	}
	format, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, "", "", false
	}
	if len(f) >= 4 {
		if a, err := strconv.Atoi(f[3]); err == nil {
			act = accessTechNames[a]
		}
	}
	return format, f[2], act, true
}

// threeDigitMNC lists MCCs whose operators use 3-digit MNCs, the fallback
// when EF_AD cannot be read (North America and a few others).
var threeDigitMNC = map[string]bool{
	"302": true, "310": true, "311": true, "312": true, "313": true, "314": true, "315": true,
	"316": true, "334": true, "338": true, "342": true, "344": true, "346": true, "348": true,
	"352": true, "354": true, "356": true, "358": true, "360": true, "365": true, "376": true,
	"405": true, "708": true, "722": true, "732": true,
}

// homeOperator returns MCC+MNC from the IMSI; mncLen comes from EF_AD (0 if
// unknown).
func homeOperator(imsi string, mncLen int) string {
	if len(imsi) < 6 || !digitsOnly(imsi) {
		return ""
	}
	if mncLen != 2 && mncLen != 3 {
		mncLen = 2
		if threeDigitMNC[imsi[:3]] {
			mncLen = 3
		}
	}
	return imsi[:3+mncLen]
}

// parseEFAD returns the MNC length from EF_AD's fourth byte.
func parseEFAD(data string) int {
	raw, err := hex.DecodeString(data)
	if err != nil || len(raw) < 4 {
		return 0
	}
	if n := int(raw[3] & 0x0F); n == 2 || n == 3 {
		return n
	}
	return 0
}

// stripInfo removes a "+CGMI: " style echo of the command name that some
// modems put before identity strings.
func stripInfo(lines []string, prefixes ...string) string {
	for _, l := range lines {
		v := strings.TrimSpace(l)
		for _, p := range prefixes {
			v = stripPrefix(v, p)
		}
		if v != "" && printable(v) {
			return v
		}
	}
	return ""
}
