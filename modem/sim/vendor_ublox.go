package sim

import "strings"

// ubloxCommands are a u-blox TOBY-L2's networking commands; the call
// itself is +CGACT, as in the generic dialogue:
//
//	AT+UBMCONF?      → +UBMCONF: <mode>  (1 router, 2 bridge); AT+UBMCONF=<mode>
//	AT+UUSBCONF?     → +UUSBCONF: 2,"ECM",,"0x1143"
//	AT+UAUTHREQ=<cid>,<auth>[,"<user>","<pass>"]
//	AT+UIPADDR=<cid> → +UIPADDR: <cid>,"usb0","<gateway>","<mask>","<ipv6/bits>",""
//	                   (empty fields while the context is down)
//
// +UCEDATA stays unknown (+CME ERROR: 4) so that ModemManager's u-blox
// plugin uses +CGACT, as the reference run did.
func ubloxCommands(vs *vendorState) map[string]handler {
	return map[string]handler{
		"+UBMCONF": func(c *call) error {
			switch c.req.op {
			case opQuery:
				c.say("+UBMCONF: %d", vs.ubmconf)
			case opTest:
				c.say("+UBMCONF: (1-2)")
			case opSet:
				n, err := c.needArg(c.params(), 0, 1, 2)
				if err != nil {
					return err
				}
				vs.ubmconf = n
			default:
				return errUnsupported
			}
			return nil
		},
		"+UUSBCONF": func(c *call) error {
			if c.req.op != opQuery {
				return errUnsupported
			}
			c.say(`+UUSBCONF: 2,"ECM",,"0x1143"`)
			return nil
		},
		"+UAUTHREQ": setOnly("+UAUTHREQ: (1-8),(0-3),,", setAuth(3, 2, 3)),
		"+UIPADDR":  uipaddr,
	}
}

var uipaddr = perContext(false, func(c *call, ctx *pdpContext) {
	v4, v6 := c.st.addrs(ctx)
	if !v4.IsValid() && !v6.IsValid() {
		c.say(`+UIPADDR: %d,"","","","",""`, ctx.cid)
		return
	}
	f := []string{quote("usb0"), quote(""), quote(""), quote(""), quote("")}
	if v4.IsValid() {
		f[1], f[2] = quote(or4(c.st.bearer.Gateway4)), quote(mask4(v4.Bits()))
	}
	if v6.IsValid() {
		f[3] = quote(strings.ToUpper(v6.String()))
	}
	c.say("+UIPADDR: %d,%s", ctx.cid, strings.Join(f, ","))
})
