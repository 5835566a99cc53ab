package sim

// sierraCommands are a Sierra Wireless MC7304's data-call commands:
//
//	AT!SCACT=<state>,<cid>  1 starts the call on the context, 0 stops it
//	AT!SCACT?               → !SCACT: <cid>,<state> per defined context
//	AT$QCPDPP=<cid>,<auth>[,"<pass>"[,"<user>"]]  (password first)
func sierraCommands(*vendorState) map[string]handler {
	return map[string]handler{
		"!SCACT":  scact,
		"$QCPDPP": qcpdpp,
	}
}

func scact(c *call) error {
	st := c.st
	switch c.req.op {
	case opTest:
		c.say("!SCACT: (0-1),(1-16)")
		return nil
	case opQuery:
		for _, ctx := range st.sortedContexts() {
			n := 0
			if ctx.active {
				n = 1
			}
			c.say("!SCACT: %d,%d", ctx.cid, n)
		}
		return nil
	case opSet:
	default:
		return errUnsupported
	}
	ps := c.params()
	on, err := c.intArg(ps, 0, -1, 0, 1)
	if err != nil || on < 0 || len(ps) < 2 {
		return errIncorrectParams
	}
	ctx, err := c.ctxArg(ps, 1)
	if err != nil {
		return err
	}
	switch {
	case on == 1 && !ctx.active:
		return st.activate(ctx)
	case on == 0 && ctx.active:
		c.m.deactivate(ctx)
	}
	return nil
}

func qcpdpp(c *call) error {
	switch c.req.op {
	case opTest:
		c.say("$QCPDPP: (1-16),(0-2),,")
		return nil
	case opSet:
	default:
		return errUnsupported
	}
	ps := c.params()
	ctx, err := c.ctxArg(ps, 0)
	if err != nil || len(ps) < 2 {
		return errIncorrectParams
	}
	auth, err := c.intArg(ps, 1, 0, 0, 2)
	if err != nil {
		return err
	}
	ctx.auth, ctx.pass, ctx.user = auth, "", ""
	if len(ps) > 2 {
		ctx.pass = ps[2].val
	}
	if len(ps) > 3 {
		ctx.user = ps[3].val
	}
	return nil
}
