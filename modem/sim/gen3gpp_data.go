package sim

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// connectResult is what a data call answers, with the speed ModemManager's
// reference modem reported.
const connectResult = "CONNECT 150000000"

// generic3GPPDataCommands are the 27.007 packet-domain commands: contexts,
// attach, activation, addresses and dynamic parameters. Every active context
// gets the modem's one BearerConfig.
func generic3GPPDataCommands() map[string]handler {
	return map[string]handler{
		"+CGDCONT":   cgdcont,
		"+CGATT":     cgatt,
		"+CGACT":     cgact,
		"+CGPADDR":   cgpaddr,
		"+CGCONTRDP": cgcontrdp,
		"+CGPIAF":    cgpiaf,
		"+CGAUTH":    cgauth,
	}
}

var pdpTypes = []string{"IP", "IPV6", "IPV4V6"}

func cgdcont(c *call) error {
	st := c.st
	switch c.req.op {
	case opExec:
		return nil
	case opTest:
		for _, t := range pdpTypes {
			c.say(`+CGDCONT: (1-16),%s,,,(0-2),(0-4)`, quote(t))
		}
		return nil
	case opQuery:
		for _, ctx := range st.sortedContexts() {
			addr := "0.0.0.0"
			if v4, v6 := st.addrs(ctx); v4.IsValid() {
				addr = v4.Addr().String()
			} else if v6.IsValid() {
				addr = c.s.cfg.fmtV6(v6.Addr())
			}
			c.say("+CGDCONT: %d,%s,%s,%s,0,0", ctx.cid, quote(ctx.typ), quote(ctx.apn), quote(addr))
		}
		return nil
	}
	ps := c.params()
	if len(ps) == 0 {
		return errIncorrectParams
	}
	cid, err := c.intArg(ps, 0, 0, 1, 16)
	if err != nil {
		return err
	}
	ctx := st.ctxs[cid]
	if len(ps) == 1 {
		if ctx != nil && ctx.active {
			return errNotAllowed
		}
		delete(st.ctxs, cid)
		return nil
	}
	typ := strings.ToUpper(ps[1].val)
	if typ == "IPV4" {
		typ = "IP"
	}
	known := false
	for _, t := range pdpTypes {
		known = known || t == typ
	}
	if !known {
		return errIncorrectParams
	}
	apn := strArg(ps, 2)
	if ctx == nil {
		ctx = &pdpContext{cid: cid}
		st.ctxs[cid] = ctx
	}
	ctx.typ, ctx.apn = typ, apn
	return nil
}

func cgatt(c *call) error {
	st := c.st
	switch c.req.op {
	case opQuery:
		n := 0
		if st.attached && st.regStat().registered() {
			n = 1
		}
		c.say("+CGATT: %d", n)
	case opTest:
		c.say("+CGATT: (0,1)")
	case opSet:
		n, err := c.intArg(c.params(), 0, 0, 0, 1)
		if err != nil {
			return err
		}
		if n == 0 {
			for _, ctx := range st.sortedContexts() {
				if ctx.active {
					c.m.deactivate(ctx)
				}
			}
			st.attached = false
			return nil
		}
		if err := st.simErr(); err != nil {
			return err
		}
		if !st.regStat().registered() {
			return errNoService
		}
		st.attached = true
	default:
		return errUnsupported
	}
	return nil
}

// activate brings context ctx up, attaching first if need be.
func (st *state) activate(ctx *pdpContext) error {
	if err := st.simErr(); err != nil {
		return err
	}
	if !st.regStat().registered() {
		return errNoService
	}
	if v4, v6 := st.families(ctx); !v4 && !v6 {
		return errGPRSUnspecified // the network offers no address of this type
	}
	st.attached, ctx.active = true, true
	return nil
}

func cgact(c *call) error {
	st := c.st
	switch c.req.op {
	case opQuery:
		c.sayStates()
		return nil
	case opTest:
		c.say("+CGACT: (0,1)")
		return nil
	case opSet:
	default:
		return errUnsupported
	}
	ps := c.params()
	if len(ps) == 0 {
		return errIncorrectParams
	}
	on, err := c.intArg(ps, 0, 0, 0, 1)
	if err != nil {
		return err
	}
	cids, err := c.cids(ps[1:])
	if err != nil {
		return err
	}
	var ctxs []*pdpContext
	if len(cids) == 0 {
		ctxs = st.sortedContexts()
	}
	for _, cid := range cids {
		ctx, ok := st.ctxs[cid]
		if !ok {
			return errIncorrectParams
		}
		ctxs = append(ctxs, ctx)
	}
	for _, ctx := range ctxs {
		if err := c.setActive(ctx, on == 1); err != nil {
			return err
		}
	}
	return nil
}

// setActive brings ctx up (attaching first if need be) or down; nothing
// happens when it already is.
func (c *call) setActive(ctx *pdpContext, on bool) error {
	switch {
	case on && !ctx.active:
		return c.st.activate(ctx)
	case !on && ctx.active:
		c.m.deactivate(ctx)
	}
	return nil
}

// sayStates answers "<name>: <cid>,<state>" for every defined context,
// state 1 while it is active.
func (c *call) sayStates() {
	for _, ctx := range c.st.sortedContexts() {
		n := 0
		if ctx.active {
			n = 1
		}
		c.say("%s: %d,%d", c.req.name, ctx.cid, n)
	}
}

// listed returns the contexts named in ps, or every defined one.
func (c *call) listed(ps []param) ([]*pdpContext, error) {
	cids, err := c.cids(ps)
	if err != nil {
		return nil, err
	}
	if len(cids) == 0 {
		return c.st.sortedContexts(), nil
	}
	var out []*pdpContext
	for _, cid := range cids {
		if ctx, ok := c.st.ctxs[cid]; ok {
			out = append(out, ctx)
		}
	}
	return out, nil
}

func cidList(ctxs []*pdpContext, activeOnly bool) string {
	var ids []string
	for _, ctx := range ctxs {
		if !activeOnly || ctx.active {
			ids = append(ids, strconv.Itoa(ctx.cid))
		}
	}
	return "(" + strings.Join(ids, ",") + ")"
}

// perContext is a command that answers for contexts: the test form lists
// the defined cids (only the active ones with activeOnly), the action and
// set forms run each for every context the parameters name, or for every
// defined one when they name none.
func perContext(activeOnly bool, each func(c *call, ctx *pdpContext)) handler {
	return func(c *call) error {
		switch c.req.op {
		case opTest:
			c.say("%s: %s", c.req.name, cidList(c.st.sortedContexts(), activeOnly))
			return nil
		case opExec, opSet:
		default:
			return errUnsupported
		}
		ctxs, err := c.listed(c.params())
		if err != nil {
			return err
		}
		for _, ctx := range ctxs {
			each(c, ctx)
		}
		return nil
	}
}

var cgpaddr = perContext(false, func(c *call, ctx *pdpContext) {
	v4, v6 := c.st.addrs(ctx)
	var addrs []string
	if v4.IsValid() {
		addrs = append(addrs, quote(v4.Addr().String()))
	}
	if v6.IsValid() {
		addrs = append(addrs, quote(c.s.cfg.fmtV6(v6.Addr())))
	}
	if len(addrs) == 0 {
		addrs = append(addrs, quote("0.0.0.0"))
	}
	c.say("+CGPADDR: %d,%s", ctx.cid, strings.Join(addrs, ","))
})

// cgcontrdp answers one line per address family of each active context:
// <cid>,<bearer id>,<apn>,<addr and mask>,<gateway>,<dns1>,<dns2>, the
// IPv4 address and mask joined with a dot into eight octets.
var cgcontrdp = perContext(true, func(c *call, ctx *pdpContext) {
	b := c.st.bearer
	v4, v6 := c.st.addrs(ctx)
	apn := ctx.apn
	if apn == "" {
		apn = b.APN
	}
	head := fmt.Sprintf("+CGCONTRDP: %d,%d,%s", ctx.cid, 4+ctx.cid, quote(apn))
	if v4.IsValid() {
		c.say("%s,%s,%s,%s,%s", head,
			quote(v4.Addr().String()+"."+mask4(v4.Bits())),
			quote(or4(b.Gateway4)), quote(or4(nth(b.DNS4, 0))), quote(or4(nth(b.DNS4, 1))))
	}
	if v6.IsValid() {
		f := c.s.cfg.fmtV6
		c.say("%s,%s,%s,%s,%s", head,
			quote(c.s.cfg.fmtV6Prefix(v6)),
			quote(f(or6(b.Gateway6))), quote(f(or6(nth(b.DNS6, 0)))), quote(f(or6(nth(b.DNS6, 1)))))
	}
})

func nth(as []netip.Addr, i int) netip.Addr {
	if i < len(as) {
		return as[i]
	}
	return netip.Addr{}
}

func or4(a netip.Addr) string {
	if !a.Is4() {
		return "0.0.0.0"
	}
	return a.String()
}

func or6(a netip.Addr) netip.Addr {
	if !a.Is6() {
		return netip.IPv6Unspecified()
	}
	return a
}

func mask4(bits int) string {
	return netip.AddrFrom4([4]byte(maskBytes(bits, 4))).String()
}

// maskBytes is a netmask of n bytes whose first bits bits are set.
func maskBytes(bits, n int) []byte {
	m := make([]byte, n)
	for i := 0; i < bits && i < 8*n; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// fmtV6 renders an IPv6 address as +CGPIAF says: by default 16
// dot-separated decimal bytes, the 27.007 legacy form.
func (cfg *sessionConfig) fmtV6(a netip.Addr) string {
	b := a.As16()
	if cfg.piaf[0] == 0 {
		parts := make([]string, 16)
		for i, v := range b {
			parts[i] = strconv.Itoa(int(v))
		}
		return strings.Join(parts, ".")
	}
	if cfg.piaf[3] == 1 {
		return a.String()
	}
	parts := make([]string, 8)
	for i := range parts {
		v := int(b[2*i])<<8 | int(b[2*i+1])
		if cfg.piaf[2] == 1 {
			parts[i] = fmt.Sprintf("%04X", v)
		} else {
			parts[i] = fmt.Sprintf("%X", v)
		}
	}
	return strings.Join(parts, ":")
}

// fmtV6Prefix renders address and mask: dotted "<addr>.<mask>", or colon
// form with a space or "/<bits>".
func (cfg *sessionConfig) fmtV6Prefix(p netip.Prefix) string {
	addr := cfg.fmtV6(p.Addr())
	if cfg.piaf[0] == 1 && cfg.piaf[1] == 1 {
		return addr + "/" + strconv.Itoa(p.Bits())
	}
	mask := cfg.fmtV6(netip.AddrFrom16([16]byte(maskBytes(p.Bits(), 16))))
	if cfg.piaf[0] == 0 {
		return addr + "." + mask
	}
	return addr + " " + mask
}

func cgpiaf(c *call) error {
	switch c.req.op {
	case opTest:
		c.say("+CGPIAF: (0-1),(0-1),(0-1),(0-1)")
	case opQuery:
		p := c.s.cfg.piaf
		c.say("+CGPIAF: %d,%d,%d,%d", p[0], p[1], p[2], p[3])
	case opSet:
		ps := c.params()
		for i := range c.s.cfg.piaf {
			if i >= len(ps) {
				break
			}
			n, err := c.intArg(ps, i, c.s.cfg.piaf[i], 0, 1)
			if err != nil {
				return err
			}
			c.s.cfg.piaf[i] = n
		}
	default:
		return errUnsupported
	}
	return nil
}

// cgauth stores a context's authentication; the query never shows the
// password.
func cgauth(c *call) error {
	st := c.st
	switch c.req.op {
	case opTest:
		c.say("+CGAUTH: (1-16),(0-2),,")
	case opQuery:
		for _, ctx := range st.sortedContexts() {
			c.say("+CGAUTH: %d,%d,%s", ctx.cid, ctx.auth, quote(ctx.user))
		}
	case opSet:
		ps := c.params()
		cid, err := c.intArg(ps, 0, 0, 1, 16)
		if err != nil || len(ps) == 0 {
			return errIncorrectParams
		}
		auth, err := c.intArg(ps, 1, 0, 0, 2)
		if err != nil {
			return err
		}
		ctx, ok := st.ctxs[cid]
		if !ok {
			return errIncorrectParams
		}
		ctx.auth, ctx.user, ctx.pass = auth, strArg(ps, 2), strArg(ps, 3)
	default:
		return errUnsupported
	}
	return nil
}

// setAuth is a vendor's command storing a defined context's credentials:
// <cid>,<auth>[,...] with auth up to maxAuth, the user name and the
// password at parameters user and pass ("" when absent).
func setAuth(maxAuth, user, pass int) handler {
	return func(c *call) error {
		ps := c.params()
		ctx, err := c.ctxArg(ps, 0)
		if err != nil || len(ps) < 2 {
			return errIncorrectParams
		}
		auth, err := c.intArg(ps, 1, 0, 0, maxAuth)
		if err != nil {
			return err
		}
		ctx.auth, ctx.user, ctx.pass = auth, strArg(ps, user), strArg(ps, pass)
		return nil
	}
}

// dial is ATD: *99# or *99***<cid># (also *98) activates the context and
// answers CONNECT; the port then carries the data call until +++, ATH from
// the port, the context going down, or the port closing. Any other number
// is a voice call this modem cannot make.
func dial(c *call) error {
	ds := strings.ToUpper(strings.ReplaceAll(c.req.args, " ", ""))
	ds = strings.TrimLeft(ds, "TP")
	if !strings.HasPrefix(ds, "*99") && !strings.HasPrefix(ds, "*98") {
		c.final = "NO CARRIER"
		return nil
	}
	cid := 1
	body := strings.TrimSuffix(ds, "#")
	if i := strings.LastIndex(body, "***"); i >= 0 {
		n, err := strconv.Atoi(body[i+3:])
		if err != nil || n < 1 || n > 16 {
			return errIncorrectParams
		}
		cid = n
	}
	ctx, ok := c.st.ctxs[cid]
	if !ok {
		return errIncorrectParams
	}
	if err := c.setActive(ctx, true); err != nil {
		return err
	}
	c.s.callCID = cid
	c.s.dataCID.Store(int32(cid))
	c.final = connectResult
	return nil
}
