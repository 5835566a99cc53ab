package mm

import (
	"net/netip"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/simproof/simproof/modem"
)

// props is one D-Bus interface's properties as ModemManager sent them. D-Bus
// signals are external input: every accessor tolerates a missing key or a
// value of the wrong type by returning the zero value, so a daemon that
// changes a signature degrades a field instead of panicking the agent.
type props map[string]dbus.Variant

// maxString bounds any string taken from ModemManager into the API.
const maxString = 256

func (p props) str(key string) string {
	s, _ := p[key].Value().(string)
	if len(s) > maxString {
		s = s[:maxString]
	}
	return strings.TrimSpace(s)
}

func (p props) u32(key string) uint32 {
	v, _ := p[key].Value().(uint32)
	return v
}

func (p props) i32(key string) int32 {
	v, _ := p[key].Value().(int32)
	return v
}

func (p props) boolean(key string) bool {
	v, _ := p[key].Value().(bool)
	return v
}

func (p props) has(key string) bool {
	_, ok := p[key]
	return ok
}

// maxList bounds lists (own numbers, bearers) taken from ModemManager.
const maxList = 16

func (p props) strs(key string) []string {
	v, _ := p[key].Value().([]string)
	out := make([]string, 0, len(v))
	for _, s := range v {
		if len(out) == maxList {
			break
		}
		if s = strings.TrimSpace(s); s != "" && len(s) <= maxString {
			out = append(out, s)
		}
	}
	return out
}

// path returns an object path property; "/" (ModemManager's "none") is "".
func (p props) path(key string) dbus.ObjectPath {
	v, _ := p[key].Value().(dbus.ObjectPath)
	if v == "/" || !v.IsValid() {
		return ""
	}
	return v
}

func (p props) paths(key string) []dbus.ObjectPath {
	v, _ := p[key].Value().([]dbus.ObjectPath)
	out := make([]dbus.ObjectPath, 0, len(v))
	for _, o := range v {
		if len(out) == maxList {
			break
		}
		if o != "/" && o.IsValid() {
			out = append(out, o)
		}
	}
	return out
}

func (p props) dict(key string) props {
	v, _ := p[key].Value().(map[string]dbus.Variant)
	return props(v)
}

// signalQuality decodes the Modem's SignalQuality (ub): percent and whether
// it is recent. A stale 0 is ModemManager's "not known" (a disabled modem).
func (p props) signalQuality() *int {
	v, _ := p["SignalQuality"].Value().([]any)
	if len(v) != 2 {
		return nil
	}
	q, ok1 := v[0].(uint32)
	recent, ok2 := v[1].(bool)
	if !ok1 || !ok2 || q > 100 || (q == 0 && !recent) {
		return nil
	}
	n := int(q)
	return &n
}

// merge applies a PropertiesChanged (or a GetAll) to p, returning the map to
// keep (p may be nil).
func (p props) merge(changed map[string]dbus.Variant) props {
	if p == nil {
		p = make(props, len(changed))
	}
	for k, v := range changed {
		p[k] = v
	}
	return p
}

// ipConfig decodes a Bearer's Ip4Config or Ip6Config. It returns nil when
// the family is not configured (method unknown, or no dictionary at all).
// Addresses that do not parse as the family's addresses are dropped: netbind
// would otherwise be handed something it must not apply.
func ipConfig(p props, v6 bool) *modem.IPConfig {
	method := ipMethodName(p.u32("method"))
	if method == "" {
		return nil
	}
	c := &modem.IPConfig{Method: method, DNS: []string{}}
	valid := func(s string) string {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Is6() != v6 || a.Is4In6() {
			return ""
		}
		return a.String()
	}
	c.Address = valid(p.str("address"))
	if prefix := p.u32("prefix"); c.Address != "" && (prefix <= 32 || v6 && prefix <= 128) {
		c.Prefix = int(prefix)
	}
	c.Gateway = valid(p.str("gateway"))
	for _, k := range []string{"dns1", "dns2", "dns3"} {
		if d := valid(p.str(k)); d != "" {
			c.DNS = append(c.DNS, d)
		}
	}
	if mtu := p.u32("mtu"); mtu >= 68 && mtu <= 65535 {
		c.MTU = int(mtu)
	}
	return c
}

// dataInfo builds the API's view of one bearer.
func dataInfo(bearer props) modem.DataInfo {
	d := modem.DataInfo{
		Connected: bearer.boolean("Connected"),
		Interface: bearer.str("Interface"),
		APN:       bearer.dict("Properties").str("apn"),
	}
	if d.Connected {
		d.IPv4 = ipConfig(bearer.dict("Ip4Config"), false)
		d.IPv6 = ipConfig(bearer.dict("Ip6Config"), true)
	}
	return d
}

// isIMEI reports whether s is an IMEI as the AT backend reads it (+CGSN):
// 15 decimal digits.
func isIMEI(s string) bool {
	if len(s) != 15 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// modemID derives the API id: the IMEI where the modem has one, else
// ModemManager's EquipmentIdentifier (ESN/MEID for CDMA), else its
// DeviceIdentifier so a modem without either is still addressable.
func modemID(m, gpp props) string {
	if imei := gpp.str("Imei"); isIMEI(imei) {
		return imei
	}
	if eq := m.str("EquipmentIdentifier"); eq != "" {
		return eq
	}
	return m.str("DeviceIdentifier")
}

// ownNumbers normalises the SIM's numbers to E.164 with "+" where the modem
// gave an international number; a national number is kept as given, since
// guessing its country code would be inventing a phone number.
func ownNumbers(in []string) []string {
	out := make([]string, 0, len(in))
	for _, n := range in {
		n = strings.NewReplacer(" ", "", "-", "", "(", "", ")", "").Replace(n)
		if strings.HasPrefix(n, "00") && len(n) > 2 {
			n = "+" + n[2:]
		}
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}
