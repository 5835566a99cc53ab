package sim

import "strings"

// quectelCommands are a Quectel EC25's data-call commands:
//
//	AT+QCFG="usbnet"[,<mode>]  → +QCFG: "usbnet",<mode>  (0 rmnet, 1 ECM, 2 MBIM, 3 RNDIS)
//	AT+QICSGP=<cid>[,<type>,"<apn>","<user>","<pass>"[,<auth>]]
//	AT+QNETDEVCTL=<op>,<cid>[,<urc_en>]  (ECM/RNDIS only; op 0 stop, 1 once, 3 auto)
//	AT+QNETDEVCTL?            → +QNETDEVCTL: <op>,<cid>,<urc_en>,<state>
//	AT$QCRMCALL=...           (rmnet only; see qcrmcall)
//
// Whatever usbnet mode the modem is in, the other mode's data command
// answers +CME ERROR: 3, as on a module whose USB composition lacks that
// data path. +QNETDEVCTL's URC is not sent.
func quectelCommands(vs *vendorState) map[string]handler {
	return map[string]handler{
		"+QCFG":       qcfg(vs),
		"+QICSGP":     setOnly(`+QICSGP: (1-16),(1-3),"APN","USERNAME","PASSWORD",(0-3)`, qicsgp),
		"+QNETDEVCTL": qnetdevctl(vs),
		"$QCRMCALL":   qcrmcall(vs, true),
	}
}

func qcfg(vs *vendorState) handler {
	return setOnly(`+QCFG: "usbnet",(0-3)`, func(c *call) error {
		ps := c.params()
		if len(ps) == 0 || !strings.EqualFold(ps[0].val, "usbnet") {
			return errIncorrectParams // the other settings are not simulated
		}
		if len(ps) == 1 {
			c.say(`+QCFG: "usbnet",%d`, vs.usbnet)
			return nil
		}
		n, err := c.intArg(ps, 1, 0, 0, 3)
		if err != nil {
			return err
		}
		vs.usbnet = n
		return nil
	})
}

// qicsgp sets a context's type, APN and credentials the way Quectel's own
// dialler reads them; the query never shows the password.
func qicsgp(c *call) error {
	ps := c.params()
	cid, err := c.needArg(ps, 0, 1, 16)
	if err != nil {
		return err
	}
	ctx, ok := c.st.ctxs[cid]
	types := map[int]string{1: "IP", 2: "IPV6", 3: "IPV4V6"}
	if len(ps) == 1 {
		if !ok {
			return errIncorrectParams
		}
		t := map[string]int{"IP": 1, "IPV6": 2, "IPV4V6": 3}[ctx.typ]
		c.say(`+QICSGP: %d,%s,%s,"",%d`, t, quote(ctx.apn), quote(ctx.user), ctx.auth)
		return nil
	}
	t, err := c.intArg(ps, 1, 1, 1, 3)
	if err != nil {
		return err
	}
	auth, err := c.intArg(ps, 5, 0, 0, 3)
	if err != nil {
		return err
	}
	if !ok { // setting an undefined context defines it
		ctx = &pdpContext{cid: cid}
		c.st.ctxs[cid] = ctx
	}
	if ctx.active {
		return errNotAllowed
	}
	ctx.typ = types[t]
	ctx.apn, ctx.user, ctx.pass, ctx.auth = strArg(ps, 2), strArg(ps, 3), strArg(ps, 4), auth
	return nil
}

func qnetdevctl(vs *vendorState) handler {
	return func(c *call) error {
		switch c.req.op {
		case opTest:
			c.say("+QNETDEVCTL: (0,1,3),(1-16),(0,1)")
			return nil
		case opQuery:
			n := vs.netdev
			state := 0
			if ctx, ok := c.st.ctxs[n.cid]; ok && n.op != 0 && ctx.active {
				state = 1
			}
			c.say("+QNETDEVCTL: %d,%d,%d,%d", n.op, n.cid, n.urc, state)
			return nil
		case opSet:
		default:
			return errUnsupported
		}
		if vs.usbnet != 1 && vs.usbnet != 3 {
			return errNotAllowed
		}
		ps := c.params()
		op, err := c.intArg(ps, 0, 0, 0, 3)
		if err != nil || op == 2 || len(ps) < 2 {
			return errIncorrectParams
		}
		ctx, err := c.ctxArg(ps, 1)
		if err != nil {
			return err
		}
		urc, err := c.intArg(ps, 2, 0, 0, 1)
		if err != nil {
			return err
		}
		if err := c.setActive(ctx, op != 0); err != nil {
			return err
		}
		if op == 0 {
			vs.netdev.op, vs.netdev.urc = 0, urc
			return nil
		}
		vs.netdev.op, vs.netdev.cid, vs.netdev.urc = op, ctx.cid, urc
		return nil
	}
}

// qcrmcall is Qualcomm's RmNet call command, as Quectel and SIMCom
// firmwares have it:
//
//	AT$QCRMCALL=<action>,<instance>[,<IP_type>[,<tech_pref>[,<profile>]]]
//	  action 1 start, 0 stop; instance 1; IP_type 1 v4, 2 v6, 3 v4v6
//	  (default 1); tech_pref 2 = 3GPP (default); profile = the cid (default 1)
//	  → "$QCRMCALL: 1,V4" (and "1,V6") per family the call got, then OK
//	AT$QCRMCALL?  → the same lines while the call is up
//
// quectel makes it refuse (+CME ERROR: 3) unless usbnet is 0 (rmnet).
func qcrmcall(vs *vendorState, quectel bool) handler {
	return func(c *call) error {
		st := c.st
		switch c.req.op {
		case opTest:
			c.say("$QCRMCALL: (0,1),(1),(1-3),(1-2),(1-16),,")
			return nil
		case opQuery:
			if ctx, ok := st.ctxs[vs.rmnetCID]; ok && ctx.active {
				for _, f := range st.familyNames(ctx) {
					c.say("$QCRMCALL: 1,V%s", f[len(f)-1:])
				}
			}
			return nil
		case opSet:
		default:
			return errUnsupported
		}
		if quectel && vs.usbnet != 0 {
			return errNotAllowed
		}
		ps := c.params()
		action, err := c.needArg(ps, 0, 0, 1)
		if err != nil {
			return err
		}
		if _, err := c.needArg(ps, 1, 1, 1); err != nil { // instance 1 only
			return err
		}
		ipType, err := c.intArg(ps, 2, 1, 1, 3)
		if err != nil {
			return err
		}
		if tech, err := c.intArg(ps, 3, 2, 1, 2); err != nil || tech != 2 {
			return errIncorrectParams // 3GPP2 is not simulated
		}
		ctx, err := c.ctxArg(ps, 4)
		if err != nil {
			return err
		}
		if action == 0 {
			cur, ok := st.ctxs[vs.rmnetCID]
			if !ok || !cur.active {
				vs.rmnetCID = 0
				return errNotAllowed // no call to stop
			}
			c.m.deactivate(cur)
			vs.rmnetCID = 0
			return nil
		}
		if cur, ok := st.ctxs[vs.rmnetCID]; ok && cur.active && cur != ctx {
			return errNotAllowed // one RmNet call per instance
		}
		if err := c.setActive(ctx, true); err != nil {
			return err
		}
		want := map[string]bool{"IPV4": ipType != 2, "IPV6": ipType != 1}
		var got []string
		for _, f := range st.familyNames(ctx) {
			if want[f] {
				got = append(got, f)
			}
		}
		if len(got) == 0 {
			c.m.deactivate(ctx)
			return errGPRSUnspecified
		}
		vs.rmnetCID = ctx.cid
		for _, f := range got {
			c.say("$QCRMCALL: 1,V%s", f[len(f)-1:])
		}
		return nil
	}
}
