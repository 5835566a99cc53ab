package at

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/simproof/simproof/modem"
)

// activationTimeout bounds one vendor activation or deactivation command
// (+CGACT, ^NDISDUP, +QNETDEVCTL, !SCACT, $QCRMCALL): the network may take
// tens of seconds to answer a PDP request (27.007 allows +CGACT 150 s), far
// beyond the engine's per-command default.
const activationTimeout = 60 * time.Second

// profile is how one family of modems starts a data call on its network
// device. The PDP context definition (+CGDCONT, +CGAUTH, +CGATT) is shared
// (see Modem.Connect); activation, deactivation and, for some vendors, the
// reading of the IP configuration differ.
//
// Profiles are chosen by PortConfig.Profile, or for "auto" (and "") by
// detectProfile from +CGMI/+CGMM. A profile with resolve asks the modem how
// it is set up (USB network mode, bridge or router) before every connect
// and disconnect, and returns the profile that fits.
type profile struct {
	name      string
	netDevice string // the interface the vendor's driver usually creates
	dhcp      bool   // the modem serves DHCP on its net device (ECM/RNDIS router mode)

	// resolve checks the modem's set-up and returns the profile to use
	// (itself or a sibling); nil means the profile fits as it is.
	resolve    func(ctx context.Context, m *Modem, self profile) (profile, error)
	activate   func(ctx context.Context, m *Modem, p modem.ConnectParams) error
	deactivate func(ctx context.Context, m *Modem) error
	// ipConfig reads the bearer's IP configuration once activate succeeded;
	// nil means +CGCONTRDP with the +CGPADDR fallback (Modem.readIPConfig).
	ipConfig func(ctx context.Context, m *Modem, p modem.ConnectParams) (v4, v6 *modem.IPConfig, err error)
}

// genericProfile uses only 3GPP TS 27.007: +CGACT on the context. It fits
// modems whose net device follows the context by itself (most MBIM/QMI
// modules in AT-controlled setups, the simulator's default dialogue).
//
// Dialogue: AT+CGACT=1,<cid> to start, AT+CGACT=0,<cid> to stop; IP
// configuration from AT+CGCONTRDP=<cid> (AT+CGPADDR=<cid> as a fallback).
var genericProfile = profile{
	name:       "generic",
	netDevice:  "wwan0",
	activate:   cgactActivate,
	deactivate: cgactDeactivate,
}

func cgactActivate(ctx context.Context, m *Modem, _ modem.ConnectParams) error {
	_, err := m.cmdLong(ctx, fmt.Sprintf("AT+CGACT=1,%d", dataCID))
	return err
}

func cgactDeactivate(ctx context.Context, m *Modem) error {
	_, err := m.cmdLong(ctx, fmt.Sprintf("AT+CGACT=0,%d", dataCID))
	return err
}

// profiles are the names PortConfig.Profile accepts besides "auto".
var profiles = map[string]profile{
	genericProfile.name:    genericProfile,
	quectelProfile.name:    quectelProfile,
	quectelECMProfile.name: quectelECMProfile,
	quectelQMIProfile.name: quectelQMIProfile,
	simcomProfile.name:     simcomProfile,
	huaweiProfile.name:     huaweiProfile,
	ubloxProfile.name:      ubloxProfile,
	sierraProfile.name:     sierraProfile,
}

// Profiles returns the profile names a port may be configured with, "auto"
// first: auto, generic, huawei, quectel (ECM or QMI by the modem's usbnet
// setting), quectel-ecm, quectel-qmi, sierra, simcom, ublox.
func Profiles() []string {
	names := make([]string, 0, len(profiles)+1)
	for n := range profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return append([]string{"auto"}, names...)
}

// ErrUnknownProfile is returned by Connect and Disconnect when a port is
// configured with a profile name this package does not know.
var ErrUnknownProfile = errors.New("unknown AT profile")

// profile returns the profile for this modem: the configured one, or the
// one detectProfile picks from +CGMI/+CGMM, resolved against the modem's
// set-up. Callers hold m.ops.
func (m *Modem) profile(ctx context.Context) (profile, error) {
	name := strings.ToLower(strings.TrimSpace(m.port.Profile))
	if name == "" || name == "auto" {
		name = detectProfile(m.Info())
	}
	p, ok := profiles[name]
	if !ok {
		return profile{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownProfile, m.port.Profile, strings.Join(Profiles(), ", "))
	}
	if p.resolve == nil {
		return p, nil
	}
	r, err := p.resolve(ctx, m, p)
	if err != nil {
		return profile{}, fmt.Errorf("%s profile: %w", p.name, err)
	}
	return r, nil
}

// detectProfile picks a profile from what the modem says it is. Vendors
// spell themselves in many ways (+CGMI "Quectel", "SIMCOM INCORPORATED",
// "Huawei Technologies Co., Ltd.", "huawei", "u-blox", "Sierra Wireless,
// Incorporated"), so the match is on words, in either field; anything
// unknown gets the generic profile.
func detectProfile(info modem.Info) string {
	mf := strings.ToLower(info.Manufacturer)
	model := strings.ToLower(info.Model)
	both := mf + " " + model
	switch {
	case strings.Contains(both, "quectel"):
		return quectelProfile.name
	case strings.Contains(both, "simcom") || strings.Contains(both, "simtech") ||
		hasModelPrefix(model, "sim7100", "sim7500", "sim7600", "sim8200"):
		return simcomProfile.name
	case strings.Contains(both, "huawei"):
		return huaweiProfile.name
	case strings.Contains(both, "u-blox") || strings.Contains(both, "ublox"):
		return ubloxProfile.name
	case strings.Contains(both, "sierra"):
		return sierraProfile.name
	}
	return genericProfile.name
}

func hasModelPrefix(model string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(model, p) {
			return true
		}
	}
	return false
}

func (m *Modem) netDevice(p profile) string {
	if m.port.NetDevice != "" {
		return m.port.NetDevice
	}
	return p.netDevice
}

// cmdLong runs a command that may take long by design (activation,
// deactivation) with activationTimeout instead of the engine's default.
func (m *Modem) cmdLong(ctx context.Context, c string) ([]string, error) {
	return m.cmdWithin(ctx, c, activationTimeout)
}

// cmdWithin is cmd with its own timeout (zero: the engine's default); a
// dead port becomes modem.ErrGone, with any secret in c redacted.
func (m *Modem) cmdWithin(ctx context.Context, c string, d time.Duration) ([]string, error) {
	lines, err := m.eng.CommandTimeout(ctx, c, d)
	if err != nil && errors.Is(err, ErrClosed) {
		return nil, fmt.Errorf("%s %s: %w: %v", m.port.Device, redact(c), modem.ErrGone, err)
	}
	return lines, err
}

// pdpIPType maps ConnectParams.IPType to the numbers vendor commands use
// ($QCRMCALL, +QICSGP): 1 IPv4, 2 IPv6, 3 IPv4v6.
func pdpIPType(t string) int {
	switch t {
	case "ipv6":
		return 2
	case "ipv4v6":
		return 3
	}
	return 1
}

// authCode maps ConnectParams.Auth to the 27.007 +CGAUTH numbers most
// vendor commands share: 0 none, 1 PAP, 2 CHAP; any (the empty string)
// becomes def, since vendors differ on what "any" is.
func authCode(auth string, def int) int {
	switch strings.ToLower(auth) {
	case "none":
		return 0
	case "pap":
		return 1
	case "chap":
		return 2
	}
	return def
}

// rollbackTimeout bounds taking down a call whose connect failed half-way,
// even when the connect's own context has ended.
const rollbackTimeout = 10 * time.Second

// rollback takes down a call whose connect failed after activation began,
// so that the next connect does not find the context active (+CGDCONT
// refuses to redefine an active context) and no call is left up that the
// modem object does not show. Best effort: the connect's error is what
// the caller needs.
func (m *Modem) rollback(ctx context.Context, p profile) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	if err := p.deactivate(ctx, m); err != nil {
		m.b.log.Debug("taking down a half-made call failed", "port", m.port.Device, "profile", p.name, "err", err)
	}
}

// pollEvery spaces the status queries that confirm a vendor activation or
// deactivation; a URC the profile waits for cuts the wait short.
const pollEvery = 500 * time.Millisecond

// confirm runs check until it reports done: at once, then every pollEvery
// or as soon as a URC starting with one of wake arrives, within
// activationTimeout and ctx. what names the wait in the error.
func (m *Modem) confirm(ctx context.Context, what string, check func(context.Context) (bool, error), wake ...string) error {
	var urcs <-chan URC
	if len(wake) > 0 {
		ch, cancel := m.eng.Subscribe(wake...)
		defer cancel()
		urcs = ch
	}
	ctx, cancel := context.WithTimeout(ctx, activationTimeout)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		done, err := check(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-tick.C:
		case _, ok := <-urcs:
			if !ok {
				urcs = nil // the engine stopped: the next check says so
			}
		}
	}
}
