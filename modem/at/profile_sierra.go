package at

import (
	"context"
	"errors"
	"fmt"

	"github.com/simproof/simproof/modem"
)

// sierraProfile covers Sierra Wireless MC/EM73xx and EM74xx/MC74xx
// (MC7304, MC7354, MC7455, EM7455) driven over their AT port, whose net
// device is qmi_wwan's (or DirectIP sierra_net's) wwan0, configured
// statically from the PDP context.
//
// Dialogue (Sierra's AT command reference for the MC/EM7xxx and
// ModemManager's Sierra bearer, read, not copied):
//
//	AT$QCPDPP=<cid>,<auth>,"<pass>","<user>"  (only with credentials)
//	AT!SCACT=1,<cid>  starts the call (can take tens of seconds)
//	AT!SCACT?         → !SCACT: <cid>,<state> per context; confirms it
//	AT!SCACT=0,<cid>  stops it
//	AT+CGCONTRDP=<cid> → the IP configuration
var sierraProfile = profile{
	name:      "sierra",
	netDevice: "wwan0",
	activate: func(ctx context.Context, m *Modem, p modem.ConnectParams) error {
		if p.User != "" || p.Password != "" {
			// Sierra's Qualcomm firmware takes credentials here (password
			// first); +CGAUTH is not on every release.
			c := fmt.Sprintf(`AT$QCPDPP=%d,%d,"%s","%s"`, dataCID, authCode(p.Auth, 2), p.Password, p.User)
			if _, err := m.cmdWithin(ctx, c, 0); errors.Is(err, modem.ErrGone) {
				return err
			}
		}
		if _, err := m.cmdLong(ctx, fmt.Sprintf("AT!SCACT=1,%d", dataCID)); err != nil {
			return err
		}
		return sierraExpect(ctx, m, true)
	},
	deactivate: func(ctx context.Context, m *Modem) error {
		if _, err := m.cmdLong(ctx, fmt.Sprintf("AT!SCACT=0,%d", dataCID)); err != nil {
			return err
		}
		return sierraExpect(ctx, m, false)
	},
}

// sierraExpect checks with AT!SCACT? that dataCID is (in)active, as the
// command just asked. A modem that refuses the query is taken at its word.
func sierraExpect(ctx context.Context, m *Modem, active bool) error {
	lines, err := m.cmd(ctx, "AT!SCACT?")
	if errors.Is(err, modem.ErrGone) {
		return err
	}
	if err != nil {
		return nil
	}
	if got, ok := parseSCACT(lines)[dataCID]; ok && got != active {
		return fmt.Errorf("AT!SCACT? reports context %d active=%v after AT!SCACT=%d,%d", dataCID, got, map[bool]int{true: 1}[active], dataCID)
	}
	return nil
}

// parseSCACT reads "!SCACT: <cid>,<state>" lines into cid → active.
func parseSCACT(lines []string) map[int]bool {
	out := map[int]bool{}
	for _, l := range lines {
		if !hasPrefixFold(l, "!SCACT:") {
			continue
		}
		n, ok := atoiFields(splitFields(stripPrefix(l, "!SCACT:")), 2)
		if !ok || n[1] > 1 {
			continue
		}
		out[n[0]] = n[1] == 1
	}
	return out
}
