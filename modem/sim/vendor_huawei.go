package sim

import (
	"fmt"
	"strings"
)

// huaweiCommands are a Huawei ME909s's NDIS data-call commands:
//
//	AT^NDISDUP=<cid>,<connect>[,"<apn>"[,"<user>","<pass>",<auth>]]
//	  connect 1: OK, then the URC ^NDISSTAT: 1,,,"IPV4" per family, or,
//	  when the network refuses, ^NDISSTAT: 0,<3GPP cause>,,"IPV4";
//	  connect 0: OK and ^NDISSTAT: 0,,,"IPV4", or ERROR with no call up
//	AT^NDISSTATQRY?  → ^NDISSTATQRY: <stat>,,,"IPV4"[,<stat>,,,"IPV6"]
//	AT^DHCP?         → ^DHCP: <ip>,<mask>,<gw>,<dhcp>,<dns1>,<dns2>,<max_rx>,<max_tx>
//	                   (little-endian hex, leading zeros dropped)
func huaweiCommands(vs *vendorState) map[string]handler {
	return map[string]handler{
		"^NDISDUP":     ndisdup(vs),
		"^NDISSTATQRY": ndisstatqry(vs),
		"^DHCP":        huaweiDHCP(vs),
	}
}

// 3GPP TS 24.008 session management causes the simulator reports.
const (
	causeNetworkFailure = 38
	causeIPv4Only       = 50
	causeIPv6Only       = 51
)

func ndisdup(vs *vendorState) handler {
	return setOnly(`^NDISDUP: (1-16),(0-1),,,,(0-3)`, func(c *call) error {
		st := c.st
		ps := c.params()
		cid, err := c.needArg(ps, 0, 1, 16)
		if err != nil || len(ps) < 2 {
			return errIncorrectParams
		}
		up, err := c.intArg(ps, 1, 0, 0, 1)
		if err != nil {
			return err
		}
		auth, err := c.intArg(ps, 5, 0, 0, 3)
		if err != nil {
			return err
		}
		ctx, ok := st.ctxs[cid]
		if up == 0 {
			if !ok || !ctx.active {
				return errPlain // as real ones: ERROR when no call is up
			}
			c.m.deactivate(ctx)
			c.m.broadcast(func(*session) string { return ndisstatLines(0, "", st.familyNames(ctx)) })
			return nil
		}
		if err := st.simErr(); err != nil {
			return err
		}
		if !ok {
			ctx = &pdpContext{cid: cid, typ: "IP"}
			st.ctxs[cid] = ctx
		}
		if apn := strArg(ps, 2); apn != "" {
			ctx.apn = apn
		}
		if len(ps) > 3 {
			ctx.user, ctx.auth = ps[3].val, auth
			if len(ps) > 4 {
				ctx.pass = ps[4].val
			}
		}
		vs.ndisCID = cid
		if ctx.active {
			c.m.broadcast(func(*session) string { return ndisstatLines(1, "", st.familyNames(ctx)) })
			return nil
		}
		// The modem accepts the request and reports the network's answer
		// afterwards, as a URC.
		if err := st.activate(ctx); err != nil {
			cause := causeNetworkFailure
			if err == errGPRSUnspecified {
				cause = causeIPv6Only
				if st.bearer.IPv4.IsValid() {
					cause = causeIPv4Only
				}
			}
			c.m.broadcast(func(*session) string {
				return ndisstatLines(0, fmt.Sprint(cause), typeFamilies(ctx.typ))
			})
			return nil
		}
		c.m.broadcast(func(*session) string { return ndisstatLines(1, "", st.familyNames(ctx)) })
		return nil
	})
}

// ndisstatLines renders one ^NDISSTAT URC line per family.
func ndisstatLines(stat int, cause string, families []string) string {
	var lines []string
	for _, f := range families {
		lines = append(lines, fmt.Sprintf("^NDISSTAT: %d,%s,,%s", stat, cause, quote(f)))
	}
	return strings.Join(lines, "\n")
}

func ndisstatqry(vs *vendorState) handler {
	return func(c *call) error {
		switch c.req.op {
		case opTest:
			c.say(`^NDISSTATQRY: (0-1),,,("IPV4","IPV6")`)
			return nil
		case opQuery:
		default:
			return errUnsupported
		}
		ctx, ok := c.st.ctxs[vs.ndisCID]
		if !ok {
			c.say(`^NDISSTATQRY: 0,,,"IPV4"`)
			return nil
		}
		have := map[string]bool{}
		for _, f := range c.st.familyNames(ctx) {
			have[f] = ctx.active
		}
		var parts []string
		for _, f := range typeFamilies(ctx.typ) {
			stat := 0
			if have[f] {
				stat = 1
			}
			parts = append(parts, fmt.Sprintf("%d,,,%s", stat, quote(f)))
		}
		c.say("^NDISSTATQRY: %s", strings.Join(parts, ","))
		return nil
	}
}

func huaweiDHCP(vs *vendorState) handler {
	return func(c *call) error {
		if c.req.op != opQuery {
			return errUnsupported
		}
		ctx, ok := c.st.ctxs[vs.ndisCID]
		if !ok {
			return errNotAllowed
		}
		v4, _ := c.st.addrs(ctx)
		if !v4.IsValid() {
			return errNotAllowed // no IPv4 call up
		}
		b := c.st.bearer
		c.say("^DHCP: %s,%s,%s,%s,%s,%s,150000000,50000000",
			hexLE(v4.Addr()), hexLE(maskAddr(v4.Bits())), hexLE(b.Gateway4), hexLE(b.Gateway4),
			hexLE(nth(b.DNS4, 0)), hexLE(nth(b.DNS4, 1)))
		return nil
	}
}
