package at

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/simproof/simproof/modem"
)

// huaweiProfile covers Huawei NDIS modems driven over AT: ME909u/ME909s,
// MU709, ME906 and E3372 in "stick" (NDIS) firmware, whose net device is
// huawei_cdc_ncm's (or cdc_ether's) and is configured statically from what
// the modem reports in ^DHCP.
//
// Dialogue (Huawei's HiLink-less AT interface, as ModemManager's Huawei
// bearer speaks it; read, not copied):
//
//	AT^NDISDUP=<cid>,1[,"<apn>"[,"<user>","<pass>",<auth>]]  → OK, then the
//	   URC ^NDISSTAT: <stat>,<err>,<wx>,"IPV4" (stat 1 up, 0 down with the
//	   3GPP cause in err); AT^NDISSTATQRY? is polled should the URC not come
//	AT^DHCP?  → ^DHCP: <ip>,<mask>,<gw>,<dhcp>,<dns1>,<dns2>,<max_rx>,<max_tx>
//	   (IPv4 addresses as little-endian hex, leading zeros dropped)
//	AT^NDISDUP=<cid>,0 stops the call; AT^NDISSTATQRY? confirms it.
//
// IPv6 (ipv6, ipv4v6) comes from +CGCONTRDP, as does IPv4 when ^DHCP? is
// refused.
var huaweiProfile = profile{
	name:       "huawei",
	netDevice:  "wwan0",
	activate:   huaweiActivate,
	deactivate: huaweiDeactivate,
	ipConfig:   huaweiIPConfig,
}

// Huawei's ^NDISDUP <auth>: 0 none, 1 PAP, 2 CHAP (3 MSCHAPv2).
const huaweiAuthCHAP = 2

func huaweiActivate(ctx context.Context, m *Modem, p modem.ConnectParams) error {
	c := fmt.Sprintf("AT^NDISDUP=%d,1", dataCID)
	switch {
	case p.User != "" || p.Password != "":
		auth := authCode(p.Auth, huaweiAuthCHAP)
		if auth == 0 {
			auth = huaweiAuthCHAP // credentials with "none" make no sense; CHAP is the usual default
		}
		c += fmt.Sprintf(`,"%s","%s","%s",%d`, p.APN, p.User, p.Password, auth)
	case p.APN != "":
		c += fmt.Sprintf(`,"%s"`, p.APN)
	}
	// Subscribe before dialling: the URC may follow the OK at once.
	urcs, cancel := m.eng.Subscribe("^NDISSTAT:")
	defer cancel()
	if _, err := m.cmdLong(ctx, c); err != nil {
		return err
	}
	wantV4, wantV6 := p.IPType != "ipv6", p.IPType == "ipv6" || p.IPType == "ipv4v6"
	failed := map[string]string{} // family → the URC that reported it down
	ctx, stop := context.WithTimeout(ctx, activationTimeout)
	defer stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for ^NDISSTAT after ^NDISDUP: %w", ctx.Err())
		case u, ok := <-urcs:
			if !ok {
				return fmt.Errorf("waiting for ^NDISSTAT: %w", modem.ErrGone)
			}
			for _, f := range parseNDISSTAT(u.Line) {
				if f.connected && (f.family == "ipv4" && wantV4 || f.family == "ipv6" && wantV6) {
					return nil
				}
				if !f.connected {
					failed[f.family] = u.Line
				}
			}
			if (!wantV4 || failed["ipv4"] != "") && (!wantV6 || failed["ipv6"] != "") {
				return fmt.Errorf("the modem reports the call down: %s%s", strings.TrimSpace(u.Line), causeText(parseNDISSTAT(u.Line)))
			}
		case <-tick.C:
			// A firmware that sends no URC (or one we lost) still answers
			// the query.
			lines, err := m.cmd(ctx, "AT^NDISSTATQRY?")
			if errors.Is(err, modem.ErrGone) {
				return err
			}
			if err != nil {
				continue
			}
			for _, f := range parseNDISSTAT(strings.Join(lines, "\n")) {
				if f.connected && (f.family == "ipv4" && wantV4 || f.family == "ipv6" && wantV6) {
					return nil
				}
			}
		}
	}
}

func causeText(fs []ndisFamily) string {
	for _, f := range fs {
		if f.cause != "" {
			return " (3GPP cause " + f.cause + ")"
		}
	}
	return ""
}

func huaweiDeactivate(ctx context.Context, m *Modem) error {
	// Stopping a call that already ended answers ERROR; the status query
	// below is what tells.
	if _, err := m.cmdLong(ctx, fmt.Sprintf("AT^NDISDUP=%d,0", dataCID)); errors.Is(err, modem.ErrGone) {
		return err
	}
	return m.confirm(ctx, "waiting for ^NDISSTATQRY to report the call down", func(ctx context.Context) (bool, error) {
		lines, err := m.cmd(ctx, "AT^NDISSTATQRY?")
		if errors.Is(err, modem.ErrGone) {
			return false, err
		}
		if err != nil {
			return true, nil
		}
		for _, f := range parseNDISSTAT(strings.Join(lines, "\n")) {
			if f.connected {
				return false, nil
			}
		}
		return true, nil
	}, "^NDISSTAT:")
}

// huaweiIPConfig prefers ^DHCP? for IPv4 and reads IPv6 (and IPv4 when
// ^DHCP? is refused) from +CGCONTRDP.
func huaweiIPConfig(ctx context.Context, m *Modem, p modem.ConnectParams) (v4, v6 *modem.IPConfig, err error) {
	if p.IPType != "ipv6" {
		lines, err := m.cmd(ctx, "AT^DHCP?")
		if errors.Is(err, modem.ErrGone) {
			return nil, nil, err
		}
		if err == nil {
			if c, perr := parseHuaweiDHCP(lines); perr == nil {
				v4 = c
			} else {
				m.b.log.Debug("unusable ^DHCP answer; falling back to +CGCONTRDP", "port", m.port.Device, "err", perr)
			}
		}
		if v4 != nil && p.IPType != "ipv4v6" {
			return v4, nil, nil
		}
	}
	gv4, gv6, gerr := m.readIPConfig(ctx)
	if errors.Is(gerr, modem.ErrGone) {
		return nil, nil, gerr
	}
	if v4 == nil {
		v4 = gv4
	}
	if v4 == nil && gv6 == nil {
		return nil, nil, gerr
	}
	return v4, gv6, nil
}

// ndisFamily is one family's state in a ^NDISSTAT URC or ^NDISSTATQRY?
// answer.
type ndisFamily struct {
	family    string // ipv4, ipv6
	connected bool
	cause     string // the 3GPP cause when the network refused, if given
}

// parseNDISSTAT reads ^NDISSTAT / ^NDISSTATQRY lines in their forms:
//
//	^NDISSTAT: <stat>,<err>,<wx_state>,"IPV4"        (one line per family)
//	^NDISSTATQRY: 1,,,"IPV4",0,,,"IPV6"              (both on one line)
//	^NDISSTATQry:1                                   (old firmware: IPv4)
func parseNDISSTAT(text string) []ndisFamily {
	var out []ndisFamily
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		var body string
		switch {
		case hasPrefixFold(l, "^NDISSTATQRY:"):
			body = l[len("^NDISSTATQRY:"):]
		case hasPrefixFold(l, "^NDISSTAT:"):
			body = l[len("^NDISSTAT:"):]
		default:
			continue
		}
		f := splitFields(strings.TrimSpace(body))
		if len(f) == 1 {
			if n, err := strconv.Atoi(f[0]); err == nil && (n == 0 || n == 1) {
				out = append(out, ndisFamily{family: "ipv4", connected: n == 1})
			}
			continue
		}
		for i := 0; i+3 < len(f); i += 4 {
			n, err := strconv.Atoi(f[i])
			if err != nil || n < 0 || n > 3 { // 2 connecting, 3 disconnecting
				continue
			}
			fam := ""
			switch strings.ToUpper(f[i+3]) {
			case "IPV4", "IP":
				fam = "ipv4"
			case "IPV6":
				fam = "ipv6"
			default:
				continue
			}
			nf := ndisFamily{family: fam, connected: n == 1}
			if n == 0 && f[i+1] != "" && digitsOnly(f[i+1]) {
				nf.cause = f[i+1]
			}
			if n == 2 || n == 3 {
				continue // in between: neither up nor down yet
			}
			out = append(out, nf)
		}
	}
	return out
}

// parseHuaweiDHCP reads
//
//	^DHCP: <ip>,<mask>,<gateway>,<dhcp server>,<dns1>,<dns2>,<max_rx>,<max_tx>
//
// where each address is a 32-bit hexadecimal number, optionally 0x-prefixed,
// holding the address's octets least significant first (192.168.50.32 is
// "2032A8C0"), and leading zeros may be dropped ("1010A0A" is 10.10.1.1).
func parseHuaweiDHCP(lines []string) (*modem.IPConfig, error) {
	for _, l := range lines {
		if !hasPrefixFold(l, "^DHCP:") {
			continue
		}
		f := splitFields(strings.TrimSpace(strings.TrimSpace(l)[len("^DHCP:"):]))
		if len(f) < 6 {
			return nil, fmt.Errorf("^DHCP answer %q: %d fields, want at least 6", l, len(f))
		}
		var a [6]netip.Addr
		for i := range a {
			addr, err := hexLEAddr(f[i])
			if err != nil {
				return nil, fmt.Errorf("^DHCP answer %q field %d: %w", l, i+1, err)
			}
			a[i] = addr
		}
		ip, mask, gw := a[0], a[1], a[2]
		if ip.IsUnspecified() {
			return nil, fmt.Errorf("^DHCP answer %q: no address", l)
		}
		bits, ok := contiguousMask(mask.As4())
		if !ok || bits == 0 {
			return nil, fmt.Errorf("^DHCP answer %q: netmask %s is not a prefix", l, mask)
		}
		c := &modem.IPConfig{Method: "static", Address: ip.String(), Prefix: bits, DNS: []string{}}
		if !gw.IsUnspecified() {
			c.Gateway = gw.String()
		}
		for _, d := range a[4:6] {
			if !d.IsUnspecified() {
				c.DNS = append(c.DNS, d.String())
			}
		}
		return c, nil
	}
	return nil, errors.New("no ^DHCP line in the answer")
}

// hexLEAddr decodes one ^DHCP address.
func hexLEAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s = s[2:]
	}
	if len(s) == 0 || len(s) > 8 {
		return netip.Addr{}, fmt.Errorf("%q is not a 32-bit hex number", s)
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not a 32-bit hex number", s)
	}
	return netip.AddrFrom4([4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}), nil
}

// contiguousMask returns the prefix length of a netmask, and false for a
// mask with holes.
func contiguousMask(m [4]byte) (int, bool) {
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	bits := 0
	for v&0x80000000 != 0 {
		bits++
		v <<= 1
	}
	return bits, v == 0
}
