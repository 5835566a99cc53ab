package at

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/simproof/simproof/modem"
)

// ubloxProfile covers u-blox TOBY-L2 (L200/L201/L210/L220/L280) and
// LARA-R6 in an ECM/RNDIS USB configuration, whose net device is
// cdc_ether's usb0. +UBMCONF says how the module networks for the host:
// 2 bridge (the host takes the PDP context's address, configured
// statically) or 1 router (the module NATs and serves DHCP, so the daemon
// runs a DHCPv4 client). A module that does not answer +UBMCONF is taken
// as bridged.
//
// Dialogue (u-blox's AT manual and ModemManager's u-blox bearer, whose
// answers are recorded in ../shared/reference/modemmanager-netport.md):
//
//	AT+UBMCONF?       → +UBMCONF: <mode>
//	AT+UAUTHREQ=<cid>,<auth>,"<user>","<pass>"   (only with credentials)
//	AT+CGACT=1,<cid>  starts the call; AT+CGACT=0,<cid> stops it
//	AT+CGCONTRDP=<cid> → address, prefix, DNS (bridge mode)
//	AT+UIPADDR=<cid>  → +UIPADDR: <cid>,"<if>","<gateway>","<mask>","<v6>","<v6 ll>"
//	                    (bridge mode: the third field is the host's gateway)
var ubloxProfile = profile{
	name:       "ublox",
	netDevice:  "usb0",
	resolve:    resolveUblox,
	activate:   ubloxActivate,
	deactivate: cgactDeactivate,
}

// +UBMCONF networking modes.
const (
	ubloxRouter = 1
	ubloxBridge = 2
)

func resolveUblox(ctx context.Context, m *Modem, self profile) (profile, error) {
	lines, err := m.cmd(ctx, "AT+UBMCONF?")
	if errors.Is(err, modem.ErrGone) {
		return profile{}, err
	}
	mode := ubloxBridge
	if err == nil {
		if n, ok := parseUBMCONF(lines); ok {
			mode = n
		}
	}
	switch mode {
	case ubloxRouter:
		self.dhcp, self.ipConfig = true, nil
	case ubloxBridge:
		self.dhcp, self.ipConfig = false, ubloxBridgeIPConfig
	default:
		return profile{}, fmt.Errorf("unknown +UBMCONF networking mode %d (1 router, 2 bridge)", mode)
	}
	return self, nil
}

// u-blox +UAUTHREQ <auth>: 0 none, 1 PAP, 2 CHAP, 3 automatic.
const ubloxAuthAuto = 3

func ubloxActivate(ctx context.Context, m *Modem, p modem.ConnectParams) error {
	if p.User != "" || p.Password != "" {
		// TOBY-L2 takes credentials here rather than in +CGAUTH.
		c := fmt.Sprintf(`AT+UAUTHREQ=%d,%d,"%s","%s"`, dataCID, authCode(p.Auth, ubloxAuthAuto), p.User, p.Password)
		if _, err := m.cmdWithin(ctx, c, 0); errors.Is(err, modem.ErrGone) {
			return err
		}
	}
	return cgactActivate(ctx, m, p)
}

// ubloxBridgeIPConfig reads +CGCONTRDP and takes the gateway from
// +UIPADDR, which is where bridge mode reports it.
func ubloxBridgeIPConfig(ctx context.Context, m *Modem, _ modem.ConnectParams) (v4, v6 *modem.IPConfig, err error) {
	v4, v6, err = m.readIPConfig(ctx)
	if err != nil {
		return nil, nil, err
	}
	lines, uerr := m.cmd(ctx, fmt.Sprintf("AT+UIPADDR=%d", dataCID))
	if errors.Is(uerr, modem.ErrGone) {
		return nil, nil, uerr
	}
	if uerr == nil && v4 != nil {
		if u, ok := parseUIPADDR(lines); ok && u.cid == dataCID && u.v4.IsValid() && !u.v4.IsUnspecified() {
			v4.Gateway = u.v4.String()
		}
	}
	return v4, v6, nil
}

// parseUBMCONF reads "+UBMCONF: <mode>".
func parseUBMCONF(lines []string) (int, bool) {
	for _, l := range lines {
		if !hasPrefixFold(l, "+UBMCONF:") {
			continue
		}
		n, err := strconv.Atoi(stripPrefix(l, "+UBMCONF:"))
		if err != nil || n < 0 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// uipaddr is an AT+UIPADDR=<cid> answer.
type uipaddr struct {
	cid    int
	ifName string
	v4     netip.Addr // bridge mode: the host's gateway
	mask   netip.Addr
	v6     netip.Prefix // global address, if any
}

// parseUIPADDR reads
//
//	+UIPADDR: <cid>,"<if_name>","<ipv4>","<subnet>","<ipv6_global>","<ipv6_link_local>"
//
// where absent values are empty strings and IPv6 values carry "/<bits>".
func parseUIPADDR(lines []string) (uipaddr, bool) {
	for _, l := range lines {
		if !hasPrefixFold(l, "+UIPADDR:") {
			continue
		}
		f := splitFields(stripPrefix(l, "+UIPADDR:"))
		if len(f) < 4 {
			return uipaddr{}, false
		}
		cid, err := strconv.Atoi(f[0])
		if err != nil || cid < 0 {
			return uipaddr{}, false
		}
		u := uipaddr{cid: cid, ifName: f[1]}
		if f[2] != "" {
			if u.v4, err = netip.ParseAddr(f[2]); err != nil || !u.v4.Is4() {
				return uipaddr{}, false
			}
		}
		if f[3] != "" {
			if u.mask, err = netip.ParseAddr(f[3]); err != nil || !u.mask.Is4() {
				return uipaddr{}, false
			}
		}
		if len(f) > 4 && f[4] != "" {
			if u.v6, err = netip.ParsePrefix(f[4]); err != nil {
				return uipaddr{}, false
			}
		}
		return u, true
	}
	return uipaddr{}, false
}
