package at

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/simproof/simproof/modem"
)

// Quectel LTE modules (EC20, EC25, EG25-G, EM05, EG91 …) expose their data
// path in the USB composition AT+QCFG="usbnet" selects: 0 rmnet (QMI,
// qmi_wwan, usually raw-ip), 1 ECM (cdc_ether), 2 MBIM, 3 RNDIS. The data
// call is started differently in each, so the Quectel profiles read that
// setting first. Sources: Quectel's EC2x/EG2x AT command manuals (+QCFG,
// +QICSGP, +QNETDEVCTL, $QCRMCALL, +QNETDEVSTATUS) and ModemManager's
// Quectel ECM bearer (the +QNETDEVCTL? answer "<op>,<cid>,<urc_en>,<state>",
// the $QCRMCALL argument order), read, not copied.

// quectelProfile is what auto-detection picks for any Quectel modem: the
// usbnet setting decides between quectel-ecm (1 ECM, 3 RNDIS) and
// quectel-qmi (0, or a firmware too old to have the setting). usbnet 2
// (MBIM) needs an MBIM client, which this backend is not: that is an error.
var quectelProfile = profile{name: nameQuectel, netDevice: "wwan0", resolve: resolveQuectel}

// Profile names resolveQuectel decides between.
const (
	nameQuectel    = "quectel"
	nameQuectelECM = "quectel-ecm"
	nameQuectelQMI = "quectel-qmi"
)

// quectelECMProfile covers Quectel EC25, EG25-G, EM05 and EC20 in usbnet 1
// (ECM) or 3 (RNDIS). The module routes for the host and serves DHCP on
// its net device (usb0, eth1 or enx… by driver and udev), so the daemon
// runs a DHCPv4 client there.
//
// Dialogue: AT+QCFG="usbnet" must answer 1 or 3;
// AT+QICSGP=<cid>,<type>,"<apn>","<user>","<pass>",<auth> (credentials for
// the module's own dialler); AT+QNETDEVCTL=1,<cid>,1 starts the call;
// AT+QNETDEVCTL? (+QNETDEVCTL: <op>,<cid>,<urc_en>,<state>) confirms it;
// AT+QNETDEVCTL=0,<cid>,0 then AT+CGACT=0,<cid> stop it.
var quectelECMProfile = quectelECM()

// quectelECM and quectelQMI build the profiles (rather than resolveQuectel
// naming the variables) because resolve refers back to them.
func quectelECM() profile {
	return profile{
		name:       nameQuectelECM,
		netDevice:  "usb0",
		dhcp:       true,
		resolve:    resolveQuectel,
		activate:   quectelECMActivate,
		deactivate: quectelECMDeactivate,
	}
}

// quectelQMIProfile covers the same modules in usbnet 0 (rmnet/QMI, the
// factory default of most EC25/EG25-G), driven over AT instead of QMI: the
// call is an RmNet call on qmi_wwan's wwan0 in raw-ip mode, configured
// statically from the PDP context.
//
// Dialogue: AT+QCFG="usbnet" must answer 0 (or nothing: older firmware);
// AT$QCRMCALL=1,1,<iptype>,2,<cid> starts the call (1 IPv4, 2 IPv6, 3
// IPv4v6; 2 = 3GPP; answer "$QCRMCALL: 1,V4" per family), AT$QCRMCALL?
// confirms it; AT$QCRMCALL=0,1 then AT+CGACT=0,<cid> stop it; IP
// configuration from AT+CGCONTRDP=<cid>.
//
// Quectel documents that after $QCRMCALL the module holds the address two
// minutes for the host's DHCP or QMI request and may end the call if none
// comes (+QNETDEVSTATUS state 1 → 2). That is unverified on hardware for a
// host that configures the address statically: verify it there.
var quectelQMIProfile = quectelQMI()

func quectelQMI() profile {
	return profile{
		name:      nameQuectelQMI,
		netDevice: "wwan0",
		resolve:   resolveQuectel,
		activate: func(ctx context.Context, m *Modem, p modem.ConnectParams) error {
			return qcrmcallStart(ctx, m, p, false)
		},
		deactivate: qcrmcallStop,
	}
}

// usbnet modes of AT+QCFG="usbnet".
const (
	usbnetRmnet = 0
	usbnetECM   = 1
	usbnetMBIM  = 2
	usbnetRNDIS = 3
)

func usbnetName(mode int) string {
	if n, ok := map[int]string{usbnetRmnet: "rmnet/QMI", usbnetECM: "ECM", usbnetMBIM: "MBIM", usbnetRNDIS: "RNDIS"}[mode]; ok {
		return n
	}
	return "unknown"
}

// resolveQuectel reads AT+QCFG="usbnet" and returns the profile that fits:
// for "quectel" the one the mode calls for, for an explicit profile itself
// unless the modem is plainly in another mode.
func resolveQuectel(ctx context.Context, m *Modem, self profile) (profile, error) {
	mode, known, err := quectelUSBNet(ctx, m)
	if err != nil {
		return profile{}, err
	}
	ecm := known && (mode == usbnetECM || mode == usbnetRNDIS)
	switch {
	case self.name == nameQuectel && ecm:
		return quectelECM(), nil
	case self.name == nameQuectel && (!known || mode == usbnetRmnet):
		return quectelQMI(), nil
	case self.name == nameQuectelECM && (ecm || !known):
		return self, nil
	case self.name == nameQuectelQMI && (mode == usbnetRmnet || !known):
		return self, nil
	case mode == usbnetMBIM:
		return profile{}, fmt.Errorf(`the modem is in usbnet mode 2 (MBIM), which needs an MBIM client: set AT+QCFG="usbnet",1 (ECM) or 0 (QMI) and reset the modem, or use ModemManager`)
	case self.name == nameQuectelECM:
		return profile{}, fmt.Errorf(`the modem is in usbnet mode %d (%s), not 1 (ECM) or 3 (RNDIS): configure profile quectel-qmi, or set AT+QCFG="usbnet",1 and reset the modem`, mode, usbnetName(mode))
	case self.name == nameQuectelQMI:
		return profile{}, fmt.Errorf(`the modem is in usbnet mode %d (%s), not 0 (rmnet/QMI): configure profile quectel-ecm`, mode, usbnetName(mode))
	}
	return profile{}, fmt.Errorf(`unknown usbnet mode %d`, mode)
}

// quectelUSBNet asks for the usbnet mode. known is false when the modem
// does not answer it (older firmware); only a dead port is an error.
func quectelUSBNet(ctx context.Context, m *Modem) (mode int, known bool, err error) {
	lines, err := m.cmd(ctx, `AT+QCFG="usbnet"`)
	if errors.Is(err, modem.ErrGone) {
		return 0, false, err
	}
	if err != nil {
		return 0, false, nil
	}
	mode, known = parseQCFGUSBNet(lines)
	return mode, known, nil
}

// parseQCFGUSBNet reads `+QCFG: "usbnet",<mode>`.
func parseQCFGUSBNet(lines []string) (int, bool) {
	for _, l := range lines {
		if !hasPrefixFold(l, "+QCFG:") {
			continue
		}
		f := splitFields(stripPrefix(l, "+QCFG:"))
		if len(f) < 2 || !strings.EqualFold(f[0], "usbnet") {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 0 || n > 9 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

func quectelECMActivate(ctx context.Context, m *Modem, p modem.ConnectParams) error {
	// The module's dialler takes the APN and credentials from its TCP/IP
	// context; +CGDCONT/+CGAUTH alone are not always enough. A module
	// that refuses this still dials with the PDP context.
	auth := 0
	if p.User != "" || p.Password != "" {
		auth = authCode(p.Auth, 3) // 3: PAP or CHAP
	}
	c := fmt.Sprintf(`AT+QICSGP=%d,%d,"%s","%s","%s",%d`, dataCID, pdpIPType(p.IPType), p.APN, p.User, p.Password, auth)
	if _, err := m.cmdWithin(ctx, c, 0); errors.Is(err, modem.ErrGone) {
		return err
	}
	if _, err := m.cmdLong(ctx, fmt.Sprintf("AT+QNETDEVCTL=1,%d,1", dataCID)); err != nil {
		return err
	}
	return m.confirm(ctx, "waiting for +QNETDEVCTL to report the call up", func(ctx context.Context) (bool, error) {
		lines, err := m.cmd(ctx, "AT+QNETDEVCTL?")
		if errors.Is(err, modem.ErrGone) {
			return false, err
		}
		if err != nil {
			return true, nil // the status query is optional; the start command said OK
		}
		st, ok := parseQNETDEVCTL(lines)
		if !ok {
			return true, nil
		}
		return st.cid == dataCID && st.connected, nil
	}, "+QNETDEVCTL:")
}

func quectelECMDeactivate(ctx context.Context, m *Modem) error {
	// Stopping a call that already ended answers an error; what matters is
	// that the context is down afterwards, which +CGACT=0 ensures.
	if _, err := m.cmdLong(ctx, fmt.Sprintf("AT+QNETDEVCTL=0,%d,0", dataCID)); errors.Is(err, modem.ErrGone) {
		return err
	}
	return cgactDeactivate(ctx, m)
}

// qnetdevctl is an AT+QNETDEVCTL? answer.
type qnetdevctl struct {
	op, cid, urc int // op: 0 stopped, 1 connect once, 3 auto-connect
	connected    bool
}

// parseQNETDEVCTL reads "+QNETDEVCTL: <op>,<cid>,<urc_en>,<state>".
func parseQNETDEVCTL(lines []string) (qnetdevctl, bool) {
	for _, l := range lines {
		if !hasPrefixFold(l, "+QNETDEVCTL:") {
			continue
		}
		n, ok := atoiFields(splitFields(stripPrefix(l, "+QNETDEVCTL:")), 4)
		if !ok || n[1] > 255 || n[3] > 1 {
			return qnetdevctl{}, false
		}
		return qnetdevctl{op: n[0], cid: n[1], urc: n[2], connected: n[3] == 1}, true
	}
	return qnetdevctl{}, false
}

// qcrmcallStart starts an RmNet call on dataCID. short sends the
// two-argument form AT$QCRMCALL=1,1 (IPv4 on profile 1), the one SIMCom
// documents, when it says the same as the long form.
func qcrmcallStart(ctx context.Context, m *Modem, p modem.ConnectParams, short bool) error {
	typ := pdpIPType(p.IPType)
	c := fmt.Sprintf("AT$QCRMCALL=1,1,%d,2,%d", typ, dataCID)
	if short && typ == 1 && dataCID == 1 {
		c = "AT$QCRMCALL=1,1"
	}
	if _, err := m.cmdLong(ctx, c); err != nil {
		return err
	}
	lines, err := m.cmd(ctx, "AT$QCRMCALL?")
	if errors.Is(err, modem.ErrGone) {
		return err
	}
	if err == nil && len(parseQCRMCALL(lines)) == 0 {
		return fmt.Errorf("%s answered OK but AT$QCRMCALL? lists no RmNet call", c)
	}
	return nil
}

func qcrmcallStop(ctx context.Context, m *Modem) error {
	if _, err := m.cmdLong(ctx, "AT$QCRMCALL=0,1"); errors.Is(err, modem.ErrGone) {
		return err
	}
	return cgactDeactivate(ctx, m)
}

// parseQCRMCALL reads the calls "$QCRMCALL: <instance>,<V4|V6>" lists
// (some firmwares say 4 or 6) and returns their families, "ipv4"/"ipv6".
func parseQCRMCALL(lines []string) []string {
	var fams []string
	for _, l := range lines {
		if !hasPrefixFold(l, "$QCRMCALL:") {
			continue
		}
		f := splitFields(stripPrefix(l, "$QCRMCALL:"))
		if len(f) < 2 {
			continue
		}
		switch strings.ToUpper(f[1]) {
		case "V4", "4":
			fams = append(fams, "ipv4")
		case "V6", "6":
			fams = append(fams, "ipv6")
		}
	}
	return fams
}

func hasPrefixFold(line, prefix string) bool {
	t := strings.TrimSpace(line)
	return len(t) >= len(prefix) && strings.EqualFold(t[:len(prefix)], prefix)
}

// atoiFields reads the first n fields as non-negative integers.
func atoiFields(f []string, n int) ([]int, bool) {
	if len(f) < n {
		return nil, false
	}
	out := make([]int, n)
	for i := range out {
		v, err := strconv.Atoi(strings.TrimSpace(f[i]))
		if err != nil || v < 0 {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}
