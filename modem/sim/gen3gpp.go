package sim

import (
	"fmt"
	"strconv"
	"strings"
)

// Location reported with registration <stat> under +CxREG=2.
const (
	simLAC = "1A2B"
	simCI  = "01C3D4E"
)

// regKinds are the registration commands, in sessionConfig.reg order, with
// the highest <n> each accepts.
var regKinds = []struct {
	name  string
	maxN  int
	index int
}{{"+CREG", 2, 0}, {"+CGREG", 2, 1}, {"+CEREG", 5, 2}, {"+C5GREG", 2, 3}}

// generic3GPPCommands are the 3GPP TS 27.007 identity, SIM and network
// commands every modem answers the same way.
func generic3GPPCommands() map[string]handler {
	t := map[string]handler{
		"+GCAP": execOnly(func(c *call) error { c.say("+GCAP: +CGSM,+DS,+ES"); return nil }),
		"+CGMI": text(func(id Identity) string { return id.Manufacturer }),
		"+GMI":  text(func(id Identity) string { return id.Manufacturer }),
		"+CGMM": text(func(id Identity) string { return id.Model }),
		"+GMM":  text(func(id Identity) string { return id.Model }),
		"+CGMR": text(func(id Identity) string { return id.Revision }),
		"+GMR":  text(func(id Identity) string { return id.Revision }),
		"+GSN":  text(func(id Identity) string { return id.IMEI }),
		"+CGSN": cgsn,
		"+CMEE": setting(0, 2, func(c *call) *int { return &c.s.cfg.cmee }),

		"+CPIN":  cpin,
		"+CCID":  iccid("+CCID"),
		"+QCCID": iccid("+QCCID"),
		"+ICCID": iccid("+ICCID"),
		"^ICCID": iccid("^ICCID"),
		"+CRSM":  setOnly("", crsm),
		"+CIMI": execOnly(func(c *call) error {
			if err := c.st.simErr(); err != nil {
				return err
			}
			c.say("%s", c.st.id.IMSI)
			return nil
		}),
		"+CNUM": execOnly(func(c *call) error {
			if err := c.st.simErr(); err != nil {
				return err
			}
			if n := c.st.id.MSISDN; n != "" {
				typ := 129
				if strings.HasPrefix(n, "+") {
					typ = 145
				}
				c.say(`+CNUM: "",%s,%d`, quote(n), typ)
			}
			return nil
		}),
		"+CLCK": setOnly(`+CLCK: ("SC","FD","PN","PU","PP","PC")`, clck),

		"+CFUN":   cfun,
		"+COPS":   cops,
		"+CSQ":    csq,
		"+CESQ":   cesq,
		"+WS46":   ws46,
		"+CSCS":   cscs,
		"+CIND":   cind,
		"+CMER":   cmer,
		"+CGEREP": cgerep,
		"+IFC":    ifc,
	}
	for _, k := range regKinds {
		t[k.name] = creg(k.index, k.maxN)
	}
	return t
}

func cgsn(c *call) error {
	switch c.req.op {
	case opExec:
		c.say("%s", c.st.id.IMEI)
	case opSet:
		n, err := c.intArg(c.params(), 0, 0, 0, 1)
		if err != nil {
			return err
		}
		if n == 0 {
			c.say("%s", c.st.id.IMEI)
		} else {
			c.say("+CGSN: %s", quote(c.st.id.IMEI))
		}
	case opTest:
		c.say("+CGSN: (0-1)")
	default:
		return errUnsupported
	}
	return nil
}

func iccid(prefix string) handler {
	return func(c *call) error {
		switch c.req.op {
		case opExec, opQuery:
			if c.st.faults.NoSIM {
				return errSIMNotInserted
			}
			c.say("%s: %s", prefix, c.st.id.ICCID)
		case opTest:
		default:
			return errUnsupported
		}
		return nil
	}
}

func cpin(c *call) error {
	st := c.st
	switch c.req.op {
	case opQuery:
		switch {
		case st.faults.NoSIM:
			return errSIMNotInserted
		case st.faults.PUKRequired:
			c.say("+CPIN: SIM PUK")
		case st.faults.PINRequired:
			c.say("+CPIN: SIM PIN")
		default:
			c.say("+CPIN: READY")
		}
		return nil
	case opTest:
		return nil
	case opSet:
	default:
		return errUnsupported
	}
	ps := c.params()
	switch {
	case st.faults.NoSIM:
		return errSIMNotInserted
	case len(ps) == 0:
		return errIncorrectParams
	case st.faults.PUKRequired:
		puk := st.id.PUK
		if puk == "" {
			puk = "12345678"
		}
		if len(ps) < 2 || ps[0].val != puk || ps[1].val == "" {
			return errWrongPassword
		}
		c.m.changeLocked(func(st *state) {
			st.faults.PUKRequired, st.faults.PINRequired = false, false
			st.id.PIN, st.pinTries = ps[1].val, 3
		})
	case st.faults.PINRequired:
		pin := st.id.PIN
		if pin == "" {
			pin = "1234"
		}
		if ps[0].val != pin {
			// Three wrong PINs block the SIM, as a real one does.
			c.m.changeLocked(func(st *state) {
				if st.pinTries--; st.pinTries <= 0 {
					st.faults.PUKRequired = true
				}
			})
			return errWrongPassword
		}
		c.m.changeLocked(func(st *state) { st.faults.PINRequired, st.pinTries = false, 3 })
	default:
		return errNotAllowed
	}
	return nil
}

// SIM elementary files +CRSM READ BINARY (176) serves.
const (
	fileICCID = 0x2FE2
	fileIMSI  = 0x6F07
	fileAD    = 0x6FAD
	fileSPN   = 0x6F46
)

// crsm answers restricted SIM access with SW1,SW2 as a card does: 144,0
// with the data, 106,130 (file not found), 105,130 (security status: PIN
// not entered) or 109,0 (instruction not supported).
func crsm(c *call) error {
	st := c.st
	if st.faults.NoSIM {
		return errSIMNotInserted
	}
	ps := c.params()
	if len(ps) < 2 {
		return errIncorrectParams
	}
	cmd, err := c.intArg(ps, 0, 0, 0, 255)
	if err != nil {
		return err
	}
	file, err := c.intArg(ps, 1, 0, 0, 0xFFFF)
	if err != nil {
		return err
	}
	p3, err := c.intArg(ps, 4, 0, 0, 255)
	if err != nil {
		return err
	}
	if cmd != 176 {
		c.say("+CRSM: 109,0")
		return nil
	}
	var data string
	switch file {
	case fileICCID:
		data = efICCID(st.id.ICCID)
	case fileIMSI:
		data = efIMSI(st.id.IMSI)
	case fileAD:
		data = efAD(st.id.OperatorID)
	case fileSPN:
		if st.id.SPN != "" {
			data = efSPN(st.id.SPN)
		}
	}
	switch {
	case data == "":
		c.say("+CRSM: 106,130")
	case file != fileICCID && (st.faults.PINRequired || st.faults.PUKRequired):
		c.say("+CRSM: 105,130")
	default:
		if p3 > 0 && 2*p3 < len(data) {
			data = data[:2*p3]
		}
		c.say("+CRSM: 144,0,%s", quote(data))
	}
	return nil
}

var lockFacilities = []string{"SC", "FD", "PN", "PU", "PP", "PC"}

func clck(c *call) error {
	st := c.st
	if st.faults.NoSIM {
		return errSIMNotInserted
	}
	ps := c.params()
	if len(ps) < 2 {
		return errIncorrectParams
	}
	fac := strings.ToUpper(ps[0].val)
	known := false
	for _, f := range lockFacilities {
		known = known || f == fac
	}
	if !known {
		return errIncorrectParams
	}
	mode, err := c.intArg(ps, 1, 0, 0, 2)
	if err != nil {
		return err
	}
	if mode == 2 {
		on := 0
		if fac == "SC" && (st.faults.PINRequired || st.faults.PUKRequired) {
			on = 1
		}
		c.say("+CLCK: %d", on)
		return nil
	}
	if err := st.simErr(); err != nil {
		return err
	}
	return nil
}

func cfun(c *call) error {
	switch c.req.op {
	case opQuery:
		c.say("+CFUN: %d", c.st.cfun)
	case opTest:
		c.say("+CFUN: (0,1,4),(0,1)")
	case opSet:
		ps := c.params()
		n, err := c.intArg(ps, 0, 1, 0, 4)
		if err != nil {
			return err
		}
		if _, err := c.intArg(ps, 1, 0, 0, 1); err != nil {
			return err
		}
		if n != 0 && n != 1 && n != 4 {
			return errIncorrectParams
		}
		c.m.changeLocked(func(st *state) { st.cfun = n })
	default:
		return errUnsupported
	}
	return nil
}

// operatorName is the serving operator in +COPS format f.
func (st *state) operatorName(f int) string {
	switch f {
	case 1:
		if st.id.SPN != "" {
			return st.id.SPN
		}
		return st.id.OperatorName
	case 2:
		return st.id.OperatorID
	}
	return st.id.OperatorName
}

func cops(c *call) error {
	st := c.st
	switch c.req.op {
	case opExec:
		return nil
	case opQuery:
		if !st.regStat().registered() {
			c.say("+COPS: %d", st.copsMode)
			return nil
		}
		f := c.s.cfg.copsFormat
		c.say("+COPS: %d,%d,%s,%d", st.copsMode, f, quote(st.operatorName(f)), st.id.AcT)
		return nil
	case opTest:
		if err := st.simErr(); err != nil {
			return err
		}
		c.say("+COPS: (2,%s,%s,%s,%d),,(0-4),(0-2)", quote(st.operatorName(0)), quote(st.operatorName(1)), quote(st.operatorName(2)), st.id.AcT)
		return nil
	}
	ps := c.params()
	mode, err := c.intArg(ps, 0, 0, 0, 4)
	if err != nil {
		return err
	}
	switch mode {
	case 3:
		f, err := c.intArg(ps, 1, 0, 0, 2)
		if err != nil {
			return err
		}
		c.s.cfg.copsFormat = f
	case 0, 2:
		c.m.changeLocked(func(st *state) { st.copsMode = mode })
	case 1, 4:
		f, err := c.intArg(ps, 1, 0, 0, 2)
		if err != nil || len(ps) < 3 {
			return errIncorrectParams
		}
		if ps[2].val != st.operatorName(f) {
			if mode == 4 {
				c.m.changeLocked(func(st *state) { st.copsMode = 0 })
				return nil
			}
			return errNoService
		}
		c.m.changeLocked(func(st *state) { st.copsMode = 1 })
	}
	return nil
}

func csq(c *call) error {
	switch c.req.op {
	case opExec:
		c.say("+CSQ: %d,99", c.st.rssi())
	case opTest:
		c.say("+CSQ: (0-31,99),(0-7,99)")
	default:
		return errUnsupported
	}
	return nil
}

func clamp(v, lo, hi int) int { return max(lo, min(hi, v)) }

// cesq answers extended signal quality for the access technology in use,
// derived from the +CSQ value.
func cesq(c *call) error {
	switch c.req.op {
	case opExec:
	case opTest:
		c.say("+CESQ: (0-63,99),(0-7,99),(0-96,255),(0-49,255),(0-34,255),(0-97,255)")
		return nil
	default:
		return errUnsupported
	}
	r := c.st.rssi()
	dbm := -113 + 2*r
	switch act := c.st.id.AcT; {
	case r == 99:
		c.say("+CESQ: 99,99,255,255,255,255")
	case act == 0 || act == 1 || act == 3:
		c.say("+CESQ: %d,0,255,255,255,255", clamp(dbm+111, 0, 63))
	case act == 2 || act == 4 || act == 5 || act == 6:
		c.say("+CESQ: 99,99,%d,30,255,255", clamp(dbm+121, 0, 96))
	default:
		c.say("+CESQ: 99,99,255,255,20,%d", clamp(dbm-20+141, 0, 97))
	}
	return nil
}

// creg is +CREG, +CGREG, +CEREG, +C5GREG: the URC mode is the port's, the
// state the modem's.
func creg(index, maxN int) handler {
	return func(c *call) error {
		switch c.req.op {
		case opSet:
			n, err := c.intArg(c.params(), 0, 0, 0, maxN)
			if err != nil {
				return err
			}
			c.s.cfg.reg[index] = n
		case opQuery:
			n, stat := c.s.cfg.reg[index], c.st.regStat()
			if n >= 2 && stat.registered() {
				c.say("%s: %d,%d,%s,%s,%d", c.req.name, n, stat, quote(simLAC), quote(simCI), c.st.id.AcT)
			} else {
				c.say("%s: %d,%d", c.req.name, n, stat)
			}
		case opTest:
			c.say("%s: (0-%d)", c.req.name, maxN)
		default:
			return errUnsupported
		}
		return nil
	}
}

// regURCs are the registration URCs this port asked for, one a line.
func (s *session) regURCs(st *state) string {
	var lines []string
	stat := st.regStat()
	for _, k := range regKinds {
		switch n := s.cfg.reg[k.index]; {
		case n == 0:
		case n >= 2 && stat.registered():
			lines = append(lines, fmt.Sprintf("%s: %d,%s,%s,%d", k.name, stat, quote(simLAC), quote(simCI), st.id.AcT))
		default:
			lines = append(lines, fmt.Sprintf("%s: %d", k.name, stat))
		}
	}
	return strings.Join(lines, "\n")
}

var ws46Modes = []int{12, 22, 25, 28, 29, 30, 31}

func ws46(c *call) error {
	switch c.req.op {
	case opTest:
		c.say("+WS46: (12,22,25,28,29,30,31)")
	case opQuery:
		c.say("+WS46: 25")
	case opSet:
		n, err := c.intArg(c.params(), 0, 25, 0, 99)
		if err != nil {
			return err
		}
		for _, m := range ws46Modes {
			if m == n {
				return nil
			}
		}
		return errIncorrectParams
	default:
		return errUnsupported
	}
	return nil
}

var charsets = []string{"IRA", "GSM", "UCS2"}

// cscs keeps the character set per port but never converts: ModemManager
// accepts plain text after "UCS2" (it decodes only what is valid hex), and
// the numbers and names here are ASCII.
func cscs(c *call) error {
	switch c.req.op {
	case opTest:
		c.say(`+CSCS: ("IRA","GSM","UCS2")`)
	case opQuery:
		c.say("+CSCS: %s", quote(c.s.cfg.cscs))
	case opSet:
		ps := c.params()
		if len(ps) != 1 {
			return errIncorrectParams
		}
		for _, cs := range charsets {
			if strings.EqualFold(cs, ps[0].val) {
				c.s.cfg.cscs = cs
				return nil
			}
		}
		return errIncorrectParams
	default:
		return errUnsupported
	}
	return nil
}

func cind(c *call) error {
	switch c.req.op {
	case opTest:
		c.say(`+CIND: ("battchg",(0-5)),("signal",(0-5)),("service",(0,1)),("call",(0,1)),("roam",(0,1)),("smsfull",(0,1)),("GPRS coverage",(0,1)),("callsetup",(0-3))`)
	case opQuery:
		stat := c.st.regStat()
		b := func(v bool) int {
			if v {
				return 1
			}
			return 0
		}
		c.say("+CIND: 5,%d,%d,0,%d,0,%d,0", c.st.bars(), b(stat.registered()), b(stat == RegRoaming), b(stat.registered() && c.st.attached))
	case opSet:
	default:
		return errUnsupported
	}
	return nil
}

func cmer(c *call) error {
	switch c.req.op {
	case opTest:
		c.say("+CMER: (0-3),(0),(0),(0-2),(0,1)")
	case opQuery:
		c.say("+CMER: %d,0,0,%d,0", c.s.cfg.cmerMode, c.s.cfg.cmerInd)
	case opSet:
		ps := c.params()
		mode, err := c.intArg(ps, 0, 0, 0, 3)
		if err != nil {
			return err
		}
		ind, err := c.intArg(ps, 3, 0, 0, 2)
		if err != nil {
			return err
		}
		c.s.cfg.cmerMode, c.s.cfg.cmerInd = mode, ind
	default:
		return errUnsupported
	}
	return nil
}

func cgerep(c *call) error {
	switch c.req.op {
	case opTest:
		c.say("+CGEREP: (0-2),(0,1)")
	case opQuery:
		c.say("+CGEREP: %d,0", c.s.cfg.cgerep)
	case opSet:
		ps := c.params()
		n, err := c.intArg(ps, 0, 0, 0, 2)
		if err != nil {
			return err
		}
		if _, err := c.intArg(ps, 1, 0, 0, 1); err != nil {
			return err
		}
		c.s.cfg.cgerep = n
	default:
		return errUnsupported
	}
	return nil
}

func ifc(c *call) error {
	switch c.req.op {
	case opTest:
		c.say("+IFC: (0-2),(0-2)")
	case opQuery:
		c.say("+IFC: %d,%d", c.s.cfg.ifc[0], c.s.cfg.ifc[1])
	case opSet:
		ps := c.params()
		a, err := c.intArg(ps, 0, 2, 0, 2)
		if err != nil {
			return err
		}
		b, err := c.intArg(ps, 1, 2, 0, 2)
		if err != nil {
			return err
		}
		c.s.cfg.ifc = [2]int{a, b}
	default:
		return errUnsupported
	}
	return nil
}

// cids parses a list of context ids.
func (c *call) cids(ps []param) ([]int, error) {
	var out []int
	for _, p := range ps {
		n, err := strconv.Atoi(p.val)
		if err != nil || n < 1 || n > 16 {
			return nil, errIncorrectParams
		}
		out = append(out, n)
	}
	return out, nil
}
