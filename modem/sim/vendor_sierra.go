package sim

// sierraCommands are a Sierra Wireless MC7304's data-call commands:
//
//	AT!SCACT=<state>,<cid>  1 starts the call on the context, 0 stops it
//	AT!SCACT?               → !SCACT: <cid>,<state> per defined context
//	AT$QCPDPP=<cid>,<auth>[,"<pass>"[,"<user>"]]  (password first)
func sierraCommands(*vendorState) map[string]handler {
	return map[string]handler{
		"!SCACT":  scact,
		"$QCPDPP": setOnly("$QCPDPP: (1-16),(0-2),,", setAuth(2, 3, 2)),
	}
}

func scact(c *call) error {
	switch c.req.op {
	case opTest:
		c.say("!SCACT: (0-1),(1-16)")
		return nil
	case opQuery:
		c.sayStates()
		return nil
	case opSet:
	default:
		return errUnsupported
	}
	ps := c.params()
	on, err := c.needArg(ps, 0, 0, 1)
	if err != nil || len(ps) < 2 {
		return errIncorrectParams
	}
	ctx, err := c.ctxArg(ps, 1)
	if err != nil {
		return err
	}
	return c.setActive(ctx, on == 1)
}
