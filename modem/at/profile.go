package at

import (
	"context"
	"fmt"

	"github.com/simproof/simproof/modem"
)

// profile is how one family of modems starts a data call on its network
// device. The PDP context definition and the reading of the IP
// configuration are shared; activation differs per vendor.
type profile struct {
	name       string
	netDevice  string // the interface the vendor's driver usually creates
	dhcp       bool   // the modem serves DHCP on its net device (ECM/RNDIS router mode)
	activate   func(ctx context.Context, m *Modem, p modem.ConnectParams) error
	deactivate func(ctx context.Context, m *Modem) error
}

// genericProfile uses only 3GPP TS 27.007: +CGACT on the context. It fits
// modems whose net device follows the context by itself (most MBIM/QMI
// modules in AT-controlled setups, u-blox in bridge mode, the simulator).
var genericProfile = profile{
	name:      "generic",
	netDevice: "wwan0",
	activate: func(ctx context.Context, m *Modem, _ modem.ConnectParams) error {
		_, err := m.cmd(ctx, fmt.Sprintf("AT+CGACT=1,%d", dataCID))
		return err
	},
	deactivate: func(ctx context.Context, m *Modem) error {
		_, err := m.cmd(ctx, fmt.Sprintf("AT+CGACT=0,%d", dataCID))
		return err
	},
}

var profiles = map[string]profile{"generic": genericProfile}

// profile returns the configured profile, or detects one from +CGMI/+CGMM.
func (m *Modem) profile() profile {
	name := m.port.Profile
	if name == "" || name == "auto" {
		name = detectProfile(m.Info())
	}
	if p, ok := profiles[name]; ok {
		return p
	}
	return genericProfile
}

func detectProfile(modem.Info) string { return "generic" }

func (m *Modem) netDevice(p profile) string {
	if m.port.NetDevice != "" {
		return m.port.NetDevice
	}
	return p.netDevice
}
