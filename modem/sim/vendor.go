package sim

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Vendor dialogues: a modem made with New speaks generic 3GPP. UseVendor
// makes it one vendor's modem instead: +CGMI/+CGMM/+CGMR say who it is (so
// the AT backend's auto-detection picks that vendor's profile) and the
// vendor's data-call commands answer on top of the generic ones, each
// activating and deactivating the modem's PDP contexts, which get the
// modem's one BearerConfig as +CGACT's do:
//
//	vendor        identity (+CGMI / +CGMM)                data call
//	generic       SimVendor / SimModem LTE                +CGACT
//	quectel-ecm   Quectel / EC25, usbnet 1 (ECM)          +QCFG="usbnet", +QICSGP, +QNETDEVCTL
//	quectel-qmi   Quectel / EC25, usbnet 0 (rmnet)        +QCFG="usbnet", $QCRMCALL
//	simcom        SIMCOM INCORPORATED / SIMCOM_SIM7600G-H $QCRMCALL
//	huawei        Huawei Technologies Co., Ltd. / ME909s-120  ^NDISDUP, ^NDISSTAT URC, ^NDISSTATQRY, ^DHCP
//	ublox         u-blox / TOBY-L210, +UBMCONF: 2 (bridge) +UBMCONF, +UAUTHREQ, +CGACT, +UIPADDR
//	ublox-router  u-blox / TOBY-L210, +UBMCONF: 1 (router) as ublox
//	sierra        Sierra Wireless, Incorporated / MC7304  !SCACT, $QCPDPP
//
// The answers follow the vendors' AT manuals and ModemManager's plugins
// for them (see the at package's profiles for the sources). Settings that
// need a reset on a real modem (AT+QCFG="usbnet",<n>, AT+UBMCONF=<n>) take
// effect at once here.
//
// UseVendor is meant for a modem's set-up, before its ports are served:
// commands arriving while it switches may answer +CME ERROR: 4.

// vendorState is what a vendor dialogue remembers beyond the PDP contexts.
// Its handlers run with Modem.mu held, which guards it.
type vendorState struct {
	usbnet   int // Quectel AT+QCFG="usbnet": 0 rmnet, 1 ECM, 2 MBIM, 3 RNDIS
	netdev   struct{ op, cid, urc int }
	rmnetCID int // the context of the $QCRMCALL call; 0 none
	ndisCID  int // the context ^NDISDUP last started (1 before any)
	ubmconf  int // u-blox AT+UBMCONF: 1 router, 2 bridge
}

type vendorPreset struct {
	manufacturer, model, revision string
	setup                         func(vs *vendorState)
	commands                      func(vs *vendorState) map[string]handler
}

var vendorPresets = map[string]vendorPreset{
	"generic": {"SimVendor", "SimModem LTE", "SIMFW_1.0.0", nil, nil},
	"quectel-ecm": {"Quectel", "EC25", "EC25EFAR06A06M4G",
		func(vs *vendorState) { vs.usbnet = 1 }, quectelCommands},
	"quectel-qmi": {"Quectel", "EC25", "EC25EFAR06A06M4G",
		func(vs *vendorState) { vs.usbnet = 0 }, quectelCommands},
	"simcom": {"SIMCOM INCORPORATED", "SIMCOM_SIM7600G-H", "LE20B04SIM7600G22", nil,
		func(vs *vendorState) map[string]handler { return map[string]handler{"$QCRMCALL": qcrmcall(vs, false)} }},
	"huawei": {"Huawei Technologies Co., Ltd.", "ME909s-120", "11.617.01.00.00", nil, huaweiCommands},
	"ublox": {"u-blox", "TOBY-L210", "17.00",
		func(vs *vendorState) { vs.ubmconf = 2 }, ubloxCommands},
	"ublox-router": {"u-blox", "TOBY-L210", "17.00",
		func(vs *vendorState) { vs.ubmconf = 1 }, ubloxCommands},
	"sierra": {"Sierra Wireless, Incorporated", "MC7304", "SWI9X15C_05.05.58.00", nil, sierraCommands},
}

// Vendors returns the names UseVendor accepts, sorted.
func Vendors() []string {
	names := make([]string, 0, len(vendorPresets))
	for n := range vendorPresets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// UseVendor makes m the named vendor's modem (see Vendors): its identity
// strings change (IMEI, SIM and the rest stay) and that vendor's commands
// replace any other vendor's. "generic" goes back to the plain 3GPP modem.
func (m *Modem) UseVendor(name string) error {
	v, ok := vendorPresets[name]
	if !ok {
		return fmt.Errorf("sim: unknown vendor %q (known: %s)", name, strings.Join(Vendors(), ", "))
	}
	vs := &vendorState{ndisCID: 1}
	if v.setup != nil {
		v.setup(vs)
	}
	m.mu.Lock()
	for n := range allVendorCommands() {
		delete(m.table, n)
	}
	m.mu.Unlock()
	if v.commands != nil {
		m.addCommands(v.commands(vs))
	}
	m.change(func(st *state) {
		st.id.Manufacturer, st.id.Model, st.id.Revision = v.manufacturer, v.model, v.revision
	})
	return nil
}

// Exec runs one command line (the leading "AT" optional) as a port with
// the default settings would, and returns its answer: the lines without
// framing, joined by "\n", the final result code last. It is for setting a
// modem up the way its own commands do (Exec(`AT+QCFG="usbnet",2`),
// Exec("AT+UBMCONF=1")); no URC it raises reaches it.
func (m *Modem) Exec(line string) string {
	body := strings.TrimSpace(line)
	if len(body) >= 2 && strings.EqualFold(body[:2], "AT") {
		body = body[2:]
	}
	s := newSession(m, nil, nil)
	m.mu.Lock()
	out := m.execute(s, body)
	m.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(string(out), "\r", "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// allVendorCommands is every command name a vendor dialogue adds, so that
// switching vendors leaves none of the old one's behind.
func allVendorCommands() map[string]bool {
	out := map[string]bool{}
	for _, v := range vendorPresets {
		if v.commands == nil {
			continue
		}
		for n := range v.commands(&vendorState{}) {
			out[strings.ToUpper(n)] = true
		}
	}
	return out
}

// ctxArg returns the defined context parameter i names.
func (c *call) ctxArg(ps []param, i int) (*pdpContext, error) {
	cid, err := c.intArg(ps, i, 1, 1, 16)
	if err != nil {
		return nil, err
	}
	ctx, ok := c.st.ctxs[cid]
	if !ok {
		return nil, errIncorrectParams
	}
	return ctx, nil
}

// familyNames lists the families context ctx carries while active, as
// vendors name them ("IPV4", "IPV6").
func (st *state) familyNames(ctx *pdpContext) []string {
	v4, v6 := st.families(ctx)
	var out []string
	if v4 {
		out = append(out, "IPV4")
	}
	if v6 {
		out = append(out, "IPV6")
	}
	return out
}

// typeFamilies lists the families a context's PDP type asks for.
func typeFamilies(typ string) []string {
	switch typ {
	case "IPV6":
		return []string{"IPV6"}
	case "IPV4V6":
		return []string{"IPV4", "IPV6"}
	}
	return []string{"IPV4"}
}

// hexLE renders an IPv4 address as Huawei's ^DHCP does: the octets as one
// 32-bit number, least significant first, in hex without leading zeros.
func hexLE(a netip.Addr) string {
	if !a.Is4() {
		return "0"
	}
	b := a.As4()
	return fmt.Sprintf("%X", binary.LittleEndian.Uint32(b[:]))
}

func maskAddr(bits int) netip.Addr {
	return netip.MustParseAddr(mask4(bits))
}
