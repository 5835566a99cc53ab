package verify

import "strings"

// Digits returns an E.164 number as the providers want it: digits only,
// without "+" ("+44 7700-900124" → "447700900124"). Spaces and dashes are
// accepted; anything else, a leading 0 or a length outside 7–15 digits is
// invalid_phone_number.
func Digits(e164 string) (string, error) {
	s := strings.TrimSpace(e164)
	s = strings.TrimPrefix(s, "+")
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isDigit(c):
			b.WriteByte(c)
		case c == ' ' || c == '-':
		default:
			return "", Errorf(CodeInvalidPhoneNumber, "%q is not an E.164 number", MaskPhone(e164))
		}
	}
	d := b.String()
	if len(d) < 7 || len(d) > 15 || d[0] == '0' {
		return "", Errorf(CodeInvalidPhoneNumber, "%q is not an E.164 number (7 to 15 digits, no leading 0)", MaskPhone(e164))
	}
	return d, nil
}
