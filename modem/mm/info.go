package mm

import (
	"github.com/simproof/simproof/modem"
)

// D-Bus names this package talks to.
const (
	mmService  = "org.freedesktop.ModemManager1"
	ifModem    = mmService + ".Modem"
	if3gpp     = ifModem + ".Modem3gpp"
	ifSimple   = ifModem + ".Simple"
	ifSim      = mmService + ".Sim"
	ifBearer   = mmService + ".Bearer"
	ifProps    = "org.freedesktop.DBus.Properties"
	ifObjMgr   = "org.freedesktop.DBus.ObjectManager"
	busService = "org.freedesktop.DBus"
)

// BackendName is modem.Info.Backend for modems of this package.
const BackendName = "modemmanager"

// bearerView is one bearer as buildInfo needs it.
type bearerView struct {
	props props
	ours  bool // created by this backend's Connect
}

// buildInfo maps a modem's interfaces, its SIM and its bearers onto the
// API's modem object.
func buildInfo(ifaces map[string]props, sim props, bearers []bearerView) modem.Info {
	m, gpp := ifaces[ifModem], ifaces[if3gpp]
	state := m.i32("State")
	info := modem.Info{
		ID:               modemID(m, gpp),
		Backend:          BackendName,
		State:            stateName(state),
		Manufacturer:     m.str("Manufacturer"),
		Model:            m.str("Model"),
		Revision:         m.str("Revision"),
		Port:             m.str("PrimaryPort"),
		AccessTechnology: accessTechName(m.u32("AccessTechnologies")),
		Registration:     "unknown",
	}
	// A modem that is not enabled has no radio to measure: ModemManager
	// shows 0 then, which is not "no signal".
	if state >= stateEnabled {
		info.SignalQuality = m.signalQuality()
	}
	if imei := gpp.str("Imei"); isIMEI(imei) {
		info.IMEI = imei
	} else if eq := m.str("EquipmentIdentifier"); isIMEI(eq) {
		info.IMEI = eq
	}
	if gpp != nil {
		info.Registration = registrationName(gpp.u32("RegistrationState"))
		info.Network = modem.Network{OperatorID: gpp.str("OperatorCode"), OperatorName: gpp.str("OperatorName")}
	}
	lock := m.u32("UnlockRequired")
	switch state {
	case stateFailed:
		info.StateReason = failedReasonName(m.u32("StateFailedReason"))
	case stateLocked:
		info.StateReason = lockName(lock)
	}
	info.SIM = modem.SIM{
		ICCID:        sim.str("SimIdentifier"),
		IMSI:         sim.str("Imsi"),
		OperatorID:   sim.str("OperatorIdentifier"),
		OperatorName: sim.str("OperatorName"),
		OwnNumbers:   ownNumbers(m.strs("OwnNumbers")),
		State:        simState(state, m.u32("StateFailedReason"), lock, sim != nil),
	}
	info.Data = modem.DataInfo{}
	var best *bearerView
	for i := range bearers {
		b := &bearers[i]
		if !b.props.boolean("Connected") {
			continue
		}
		if best == nil || b.ours && !best.ours {
			best = b
		}
	}
	if best != nil {
		info.Data = dataInfo(best.props)
	}
	return info
}

// simState derives the API's sim.state from what the Modem says: a failed
// modem's reason, the lock it waits for, and whether a SIM object exists.
func simState(state int32, failed, lock uint32, haveSIM bool) string {
	switch {
	case state == stateFailed && failedReasonName(failed) == "sim-missing":
		return "missing"
	case state == stateFailed && failedReasonName(failed) == "sim-error":
		return "unknown"
	}
	switch lockName(lock) {
	case "sim-pin", "sim-pin2", "ph-sim-pin":
		return "pin-required"
	case "sim-puk", "sim-puk2":
		return "puk-required"
	}
	if state == stateLocked {
		return "unknown"
	}
	if haveSIM {
		return "ready"
	}
	return "unknown"
}

// stateError explains why a modem in info's state cannot bring up data, or
// returns nil when it may try. ModemManager's own reason goes into Reason.
func stateError(info modem.Info) error {
	switch info.State {
	case "failed":
		switch info.StateReason {
		case "sim-missing", "esim-without-profiles":
			return &modem.StateError{Err: modem.ErrSIMMissing, Reason: "failed: " + info.StateReason}
		case "sim-error":
			return &modem.StateError{Err: modem.ErrSIMLocked, Reason: "failed: " + info.StateReason}
		}
		return &modem.StateError{Err: modem.ErrNoBearer, Reason: "failed: " + info.StateReason}
	case "locked":
		return &modem.StateError{Err: modem.ErrSIMLocked, Reason: "locked: " + info.StateReason}
	}
	return nil
}
