package at

import (
	"context"

	"github.com/simproof/simproof/modem"
)

// simcomProfile covers SIMCom's Qualcomm-based LTE modules (SIM7500,
// SIM7600E/G/SA-H, SIM7100) in their default USB composition (PID 9001):
// the data path is qmi_wwan's wwan0 and the call is an RmNet call started
// over AT, configured statically from the PDP context.
//
// Dialogue: AT$QCRMCALL=1,1 starts the call (the form SIMCom's Linux
// application notes give; IPv6 and IPv4v6 use AT$QCRMCALL=1,1,<iptype>,2,
// <cid>), answered "$QCRMCALL: 1,V4" and OK; AT$QCRMCALL? confirms it;
// AT$QCRMCALL=0,1 then AT+CGACT=0,<cid> stop it; IP configuration from
// AT+CGCONTRDP=<cid>.
//
// Why not AT+CNETSTART/+CNETSTOP: on these modules they open the module's
// own TCP/IP stack (for +CCHSTART, +CLBS and the like), not a host data
// path, so the host's wwan0 would carry nothing. ASR-based A76xx modules
// also say "SIMCOM INCORPORATED" but are not known to implement $QCRMCALL;
// there the activation fails with the modem's error and profile generic
// (+CGACT) is the thing to configure.
var simcomProfile = profile{
	name:      "simcom",
	netDevice: "wwan0",
	activate: func(ctx context.Context, m *Modem, p modem.ConnectParams) error {
		return qcrmcallStart(ctx, m, p, true)
	},
	deactivate: qcrmcallStop,
}
