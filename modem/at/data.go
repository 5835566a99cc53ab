package at

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/simproof/simproof/modem"
)

// dataCID is the PDP context simproof uses. One context per modem is all a
// check needs; cid 1 is the one every modem has.
const dataCID = 1

// Connect brings up the data session: define the PDP context, attach,
// activate it the way the modem's profile does, and read the bearer's IP
// configuration.
func (m *Modem) Connect(ctx context.Context, p modem.ConnectParams) (modem.DataInfo, error) {
	m.ops.Lock()
	defer m.ops.Unlock()
	if err := m.usable(); err != nil {
		return modem.DataInfo{}, err
	}
	if cur := m.Info().Data; cur.Connected && (p.APN == "" || cur.APN == p.APN) {
		return cur, nil
	}
	prof, err := m.profile(ctx)
	if err != nil {
		return modem.DataInfo{}, fmt.Errorf("connect %s: %w", m.port.Device, err)
	}
	pdp := map[string]string{"ipv4": "IP", "ipv6": "IPV6", "ipv4v6": "IPV4V6", "": "IP"}[p.IPType]
	if pdp == "" {
		return modem.DataInfo{}, fmt.Errorf("connect %s: unknown ip type %q", m.port.Device, p.IPType)
	}
	if strings.ContainsAny(p.APN, "\"\r\n") || strings.ContainsAny(p.User+p.Password, "\"\r\n") {
		return modem.DataInfo{}, fmt.Errorf("connect %s: APN, user and password must not contain quotes or line breaks", m.port.Device)
	}
	step := func(c string) error {
		if _, err := m.cmd(ctx, c); err != nil {
			return fmt.Errorf("connect %s: %w", m.port.Device, err)
		}
		return nil
	}
	if err := step(fmt.Sprintf(`AT+CGDCONT=%d,"%s","%s"`, dataCID, pdp, p.APN)); err != nil {
		return modem.DataInfo{}, err
	}
	if p.User != "" || p.Password != "" {
		auth := map[string]int{"none": 0, "pap": 1, "chap": 2, "": 3}[strings.ToLower(p.Auth)]
		// Some modems lack +CGAUTH (they take credentials in the vendor
		// command); only a dead port stops the connect here.
		// cmdWithin, not cmd: its error redacts the password should the
		// port die right here.
		if _, err := m.cmdWithin(ctx, fmt.Sprintf(`AT+CGAUTH=%d,%d,"%s","%s"`, dataCID, auth, p.User, p.Password), 0); errors.Is(err, modem.ErrGone) {
			return modem.DataInfo{}, err
		}
	}
	if _, err := m.cmd(ctx, "AT+CGATT=1"); errors.Is(err, modem.ErrGone) {
		return modem.DataInfo{}, err
	}
	if err := prof.activate(ctx, m, p); err != nil {
		m.rollback(ctx, prof)
		return modem.DataInfo{}, fmt.Errorf("connect %s (%s profile): %w", m.port.Device, prof.name, err)
	}
	var v4, v6 *modem.IPConfig
	if prof.ipConfig != nil {
		v4, v6, err = prof.ipConfig(ctx, m, p)
	} else {
		v4, v6, err = m.readIPConfig(ctx)
	}
	if err != nil {
		m.rollback(ctx, prof)
		return modem.DataInfo{}, fmt.Errorf("connect %s (%s profile): %w", m.port.Device, prof.name, err)
	}
	d := modem.DataInfo{Connected: true, Interface: m.netDevice(prof), APN: p.APN, IPv4: v4, IPv6: v6}
	if prof.dhcp {
		// The modem routes for the host and serves DHCP on its net device:
		// the address the host must use comes from that server, not from
		// the PDP context, so none is given (the daemon runs a DHCPv4
		// client when the address is empty). IPv6 there comes from router
		// advertisements, which simproof does not configure.
		if d.IPv4 == nil {
			m.rollback(ctx, prof)
			return modem.DataInfo{}, fmt.Errorf("connect %s (%s profile): %w: the modem serves its bearer by DHCPv4 and the context has no IPv4 address", m.port.Device, prof.name, modem.ErrUnsupported)
		}
		d.IPv4, d.IPv6 = &modem.IPConfig{Method: "dhcp", DNS: []string{}}, nil
	}
	m.mu.Lock()
	m.info.Data = d
	m.recomputeLocked()
	m.mu.Unlock()
	m.b.emit(ctx, modem.Changed, m.Info())
	return d, nil
}

// Disconnect deactivates the PDP context.
func (m *Modem) Disconnect(ctx context.Context) error {
	m.ops.Lock()
	defer m.ops.Unlock()
	if m.isGone() {
		return fmt.Errorf("disconnect %s: %w", m.port.Device, modem.ErrGone)
	}
	prof, err := m.profile(ctx)
	if err != nil {
		return fmt.Errorf("disconnect %s: %w", m.port.Device, err)
	}
	if err := prof.deactivate(ctx, m); err != nil {
		return fmt.Errorf("disconnect %s (%s profile): %w", m.port.Device, prof.name, err)
	}
	m.mu.Lock()
	m.info.Data = modem.DataInfo{}
	m.recomputeLocked()
	m.mu.Unlock()
	m.b.emit(ctx, modem.Changed, m.Info())
	return nil
}

func (m *Modem) isGone() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gone
}

// usable refuses a connect the modem cannot do, with the reason.
func (m *Modem) usable() error {
	info := m.Info()
	switch {
	case m.isGone():
		return fmt.Errorf("connect %s: %w", m.port.Device, modem.ErrGone)
	case info.SIM.State == "missing":
		return &modem.StateError{Err: modem.ErrSIMMissing, Reason: "sim-missing"}
	case info.SIM.State == "pin-required" || info.SIM.State == "puk-required":
		return &modem.StateError{Err: modem.ErrSIMLocked, Reason: info.StateReason}
	case registrationRank[info.Registration] < registrationRank["home-sms-only"]:
		return &modem.StateError{Err: modem.ErrNotRegistered, Reason: "registration " + info.Registration}
	}
	return nil
}

// dataLost marks the session down after the network or the modem dropped it.
func (m *Modem) dataLost(ctx context.Context, line string) {
	m.mu.Lock()
	if !m.info.Data.Connected {
		m.mu.Unlock()
		return
	}
	m.info.Data = modem.DataInfo{}
	m.recomputeLocked()
	m.mu.Unlock()
	m.b.log.Warn("data session dropped", "port", m.port.Device, "urc", line)
}

// readIPConfig reads the bearer's configuration from +CGCONTRDP, falling
// back to +CGPADDR (address only) for modems without it.
func (m *Modem) readIPConfig(ctx context.Context) (v4, v6 *modem.IPConfig, err error) {
	lines, err := m.cmd(ctx, fmt.Sprintf("AT+CGCONTRDP=%d", dataCID))
	if err == nil {
		v4, v6 = parseCGCONTRDP(lines)
	}
	if errors.Is(err, modem.ErrGone) {
		return nil, nil, err
	}
	if v4 == nil && v6 == nil {
		lines, perr := m.cmd(ctx, fmt.Sprintf("AT+CGPADDR=%d", dataCID))
		if perr != nil {
			return nil, nil, fmt.Errorf("read bearer address on %s: %w", m.port.Device, errors.Join(err, perr))
		}
		v4, v6 = parseCGPADDR(lines)
	}
	if v4 == nil && v6 == nil {
		return nil, nil, fmt.Errorf("read bearer address on %s: %w: the modem reported no address", m.port.Device, modem.ErrNoBearer)
	}
	return v4, v6, nil
}

// parseCGCONTRDP reads +CGCONTRDP lines (one per family):
//
//	+CGCONTRDP: <cid>,<bearer>,<apn>,<addr.mask>,<gw>,<dns1>,<dns2>[,...]
//
// where <addr.mask> is "a.b.c.d.m.m.m.m" for IPv4, 32 dotted bytes for IPv6,
// or (some vendors) "addr mask" separated by a space.
func parseCGCONTRDP(lines []string) (v4, v6 *modem.IPConfig) {
	for _, l := range lines {
		if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(l)), "+CGCONTRDP:") {
			continue
		}
		f := splitFields(stripPrefix(l, "+CGCONTRDP:"))
		if len(f) < 4 {
			continue
		}
		addr, bits, ok := parseAddrMask(f[3])
		if !ok {
			continue
		}
		c := &modem.IPConfig{Method: "static", Address: addr.String(), Prefix: bits, DNS: []string{}}
		if len(f) > 4 {
			if gw, err := netip.ParseAddr(dottedToAddr(f[4])); err == nil && !gw.IsUnspecified() {
				c.Gateway = gw.String()
			}
		}
		for _, d := range f[5:min(len(f), 7)] {
			if a, err := netip.ParseAddr(dottedToAddr(d)); err == nil && !a.IsUnspecified() {
				c.DNS = append(c.DNS, a.String())
			}
		}
		if len(f) > 11 {
			if mtu, err := strconv.Atoi(f[11]); err == nil && mtu >= 576 && mtu <= 9000 {
				c.MTU = mtu
			}
		}
		if addr.Is4() && v4 == nil {
			v4 = c
		} else if addr.Is6() && v6 == nil {
			v6 = c
		}
	}
	return v4, v6
}

// parseAddrMask reads "a.b.c.d.m.m.m.m", 32 dotted IPv6 bytes, or "addr mask".
func parseAddrMask(s string) (netip.Addr, int, bool) {
	if a, m, ok := strings.Cut(strings.TrimSpace(s), " "); ok {
		addr, err1 := netip.ParseAddr(dottedToAddr(a))
		mask, err2 := netip.ParseAddr(dottedToAddr(strings.TrimSpace(m)))
		if err1 != nil || err2 != nil {
			return netip.Addr{}, 0, false
		}
		return addr, maskBits(mask.AsSlice()), true
	}
	parts := strings.Split(s, ".")
	var bytes []byte
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 {
			if addr, err := netip.ParseAddr(s); err == nil { // bare address, no mask
				return addr, addr.BitLen(), true
			}
			return netip.Addr{}, 0, false
		}
		bytes = append(bytes, byte(n))
	}
	switch len(bytes) {
	case 8:
		return netip.AddrFrom4([4]byte(bytes[:4])), maskBits(bytes[4:]), true
	case 32:
		return netip.AddrFrom16([16]byte(bytes[:16])), maskBits(bytes[16:]), true
	case 4:
		return netip.AddrFrom4([4]byte(bytes)), 32, true
	case 16:
		return netip.AddrFrom16([16]byte(bytes)), 128, true
	}
	return netip.Addr{}, 0, false
}

// dottedToAddr turns 16 dotted decimal bytes (how 27.007 writes IPv6 unless
// +CGPIAF says otherwise) into a textual IPv6 address; other input is kept.
func dottedToAddr(s string) string {
	s = strings.TrimSpace(strings.Trim(s, `"`))
	parts := strings.Split(s, ".")
	if len(parts) != 16 {
		return s
	}
	var b [16]byte
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 {
			return s
		}
		b[i] = byte(n)
	}
	return netip.AddrFrom16(b).String()
}

func maskBits(mask []byte) int {
	bits := 0
	for _, b := range mask {
		for i := 7; i >= 0; i-- {
			if b&(1<<i) == 0 {
				return bits
			}
			bits++
		}
	}
	return bits
}

// parseCGPADDR reads "+CGPADDR: <cid>,<addr>[,<addr2>]".
func parseCGPADDR(lines []string) (v4, v6 *modem.IPConfig) {
	for _, l := range lines {
		if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(l)), "+CGPADDR:") {
			continue
		}
		f := splitFields(stripPrefix(l, "+CGPADDR:"))
		for _, a := range f[1:] {
			addr, err := netip.ParseAddr(dottedToAddr(a))
			if err != nil || addr.IsUnspecified() {
				continue
			}
			c := &modem.IPConfig{Method: "static", Address: addr.String(), Prefix: addr.BitLen(), DNS: []string{}}
			if addr.Is4() && v4 == nil {
				v4 = c
			} else if addr.Is6() && v6 == nil {
				c.Prefix = 64
				v6 = c
			}
		}
	}
	return v4, v6
}
