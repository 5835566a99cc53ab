package sim

import (
	"strconv"
	"strings"
)

// v250Commands are the ITU-T V.250 basic commands.
func v250Commands() map[string]handler {
	return map[string]handler{
		"E":  portFlag(func(cfg *sessionConfig) *bool { return &cfg.echo }),
		"V":  portFlag(func(cfg *sessionConfig) *bool { return &cfg.verbose }),
		"Q":  portFlag(func(cfg *sessionConfig) *bool { return &cfg.quiet }),
		"Z":  resetPort,
		"&F": resetPort,
		"X":  acceptDigit(0, 4),
		"&C": acceptDigit(0, 1),
		"&D": acceptDigit(0, 2),
		"&K": acceptDigit(0, 6),
		"&W": acceptDigit(0, 1),
		"L":  acceptDigit(0, 3),
		"M":  acceptDigit(0, 2),
		"I": func(c *call) error {
			if _, err := c.basicArg(0, 9); err != nil {
				return err
			}
			c.say("%s %s", c.st.id.Manufacturer, c.st.id.Model)
			c.say("Revision: %s", c.st.id.Revision)
			return nil
		},
		"H": func(c *call) error {
			if ctx, ok := c.st.ctxs[c.s.callCID]; ok && c.s.callCID != 0 && ctx.active {
				c.m.deactivate(ctx)
			}
			c.s.callCID = 0
			return nil
		},
		"O": func(c *call) error {
			ctx, ok := c.st.ctxs[c.s.callCID]
			if !ok || c.s.callCID == 0 || !ctx.active {
				c.final = "NO CARRIER"
				return nil
			}
			c.s.dataCID.Store(int32(ctx.cid))
			c.final = connectResult
			return nil
		},
		"S": sRegister,
		"D": dial,
	}
}

// portFlag is a basic command turning a port setting off (0, or no digit)
// or on (1).
func portFlag(flag func(cfg *sessionConfig) *bool) handler {
	return func(c *call) error {
		n, err := c.basicArg(0, 1)
		if err == nil {
			*flag(&c.s.cfg) = n == 1
		}
		return err
	}
}

// resetPort is ATZ/AT&F: the port's settings go back to the defaults.
func resetPort(c *call) error {
	if _, err := c.basicArg(0, 1); err != nil {
		return err
	}
	c.s.cfg = defaultConfig()
	return nil
}

func acceptDigit(lo, hi int) handler {
	return func(c *call) error {
		_, err := c.basicArg(lo, hi)
		return err
	}
}

// sRegister is ATSn? and ATSn=v.
func sRegister(c *call) error {
	name, val, set := strings.Cut(c.req.args, "=")
	n, err := strconv.Atoi(name)
	if err != nil || n < 0 || n >= len(c.s.cfg.sreg) {
		return errPlain
	}
	switch c.req.op {
	case opQuery:
		c.say("%03d", c.s.cfg.sreg[n])
	case opSet:
		v, err := strconv.Atoi(val)
		if !set || err != nil || v < 0 || v > 255 {
			return errPlain
		}
		c.s.cfg.sreg[n] = v
	case opTest:
		c.say("S%d: (0-255)", n)
	default:
		return errPlain
	}
	return nil
}

// execOnly answers the action form with fn, the test form with OK, and
// anything else with "not supported", as an action-only 27.007 command.
func execOnly(fn handler) handler {
	return func(c *call) error {
		switch c.req.op {
		case opExec:
			return fn(c)
		case opTest:
			return nil
		}
		return errUnsupported
	}
}

// setOnly answers the set form with fn, the test form with testLine (no
// line when empty) and anything else with "not supported", as a 27.007
// command without a query form.
func setOnly(testLine string, fn handler) handler {
	return func(c *call) error {
		switch c.req.op {
		case opSet:
			return fn(c)
		case opTest:
			if testLine != "" {
				c.say("%s", testLine)
			}
			return nil
		}
		return errUnsupported
	}
}

// text answers an action command with one line of identity text.
func text(field func(id Identity) string) handler {
	return execOnly(func(c *call) error {
		c.say("%s", field(c.st.id))
		return nil
	})
}

// setting is a numeric per-port setting: +X=n sets, +X? answers
// "+X: n", +X=? answers "+X: (lo-hi)".
func setting(lo, hi int, get func(c *call) *int) handler {
	return func(c *call) error {
		p := get(c)
		switch c.req.op {
		case opSet:
			n, err := c.intArg(c.params(), 0, 0, lo, hi)
			if err != nil {
				return err
			}
			*p = n
		case opQuery:
			c.say("%s: %d", c.req.name, *p)
		case opTest:
			c.say("%s: (%d-%d)", c.req.name, lo, hi)
		default:
			return errUnsupported
		}
		return nil
	}
}

func quote(s string) string { return `"` + s + `"` }
