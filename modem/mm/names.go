package mm

// ModemManager's enums as the API names them: the lower-case value names
// ModemManager itself uses (mmcli prints the same), so an operator reading
// simproof's output and ModemManager's sees one vocabulary. Values outside
// the tables come from a newer daemon; they map to "unknown" rather than
// failing, because one new enum value must not hide the whole modem.

// stateName maps MMModemState.
func stateName(v int32) string {
	switch v {
	case -1:
		return "failed"
	case 0:
		return "unknown"
	case 1:
		return "initializing"
	case 2:
		return "locked"
	case 3:
		return "disabled"
	case 4:
		return "disabling"
	case 5:
		return "enabling"
	case 6:
		return "enabled"
	case 7:
		return "searching"
	case 8:
		return "registered"
	case 9:
		return "disconnecting"
	case 10:
		return "connecting"
	case 11:
		return "connected"
	}
	return "unknown"
}

const (
	stateFailed     int32 = -1
	stateLocked     int32 = 2
	stateDisabled   int32 = 3
	stateEnabled    int32 = 6
	stateRegistered int32 = 8
)

var failedReasons = []string{"none", "unknown", "sim-missing", "sim-error", "unknown-capabilities", "esim-without-profiles"}

// failedReasonName maps MMModemStateFailedReason.
func failedReasonName(v uint32) string {
	if int(v) < len(failedReasons) {
		return failedReasons[v]
	}
	return "unknown"
}

var lockNames = []string{
	"unknown", "none", "sim-pin", "sim-pin2", "sim-puk", "sim-puk2",
	"ph-sp-pin", "ph-sp-puk", "ph-net-pin", "ph-net-puk", "ph-sim-pin",
	"ph-corp-pin", "ph-corp-puk", "ph-fsim-pin", "ph-fsim-puk",
	"ph-netsub-pin", "ph-netsub-puk",
}

// lockName maps MMModemLock (the Modem's UnlockRequired).
func lockName(v uint32) string {
	if int(v) < len(lockNames) {
		return lockNames[v]
	}
	return "unknown"
}

var registrationNames = []string{
	"idle", "home", "searching", "denied", "unknown", "roaming",
	"home-sms-only", "roaming-sms-only", "emergency-only",
	"home-csfb-not-preferred", "roaming-csfb-not-preferred", "attached-rlos",
}

// registrationName maps MMModem3gppRegistrationState.
func registrationName(v uint32) string {
	if int(v) < len(registrationNames) {
		return registrationNames[v]
	}
	return "unknown"
}

// registered reports whether a registration state carries packet data.
// The SMS-only states do not, whatever their "home" in the name says.
func registered(v uint32) bool {
	switch v {
	case 1, 5, 9, 10: // home, roaming, home/roaming-csfb-not-preferred
		return true
	}
	return false
}

// accessTechPreference is MMModemAccessTechnology's bits, best first: the
// API shows one technology, and a modem reporting several (ModemManager
// ORs what each registration domain says) is as good as its best.
var accessTechPreference = []struct {
	bit  uint32
	name string
}{
	{1 << 15, "5gnr"},
	{1 << 14, "lte"},
	{1 << 16, "lte-cat-m"},
	{1 << 17, "lte-nb-iot"},
	{1 << 9, "hspa-plus"},
	{1 << 8, "hspa"},
	{1 << 7, "hsupa"},
	{1 << 6, "hsdpa"},
	{1 << 5, "umts"},
	{1 << 13, "evdob"},
	{1 << 12, "evdoa"},
	{1 << 11, "evdo0"},
	{1 << 10, "1xrtt"},
	{1 << 4, "edge"},
	{1 << 3, "gprs"},
	{1 << 1, "gsm"},
	{1 << 2, "gsm-compact"},
	{1 << 0, "pots"},
}

// accessTechName picks the best technology of an MMModemAccessTechnology
// bitmask.
func accessTechName(mask uint32) string {
	if mask == 0xFFFFFFFF { // "any": a mask, not a technology
		return "unknown"
	}
	for _, t := range accessTechPreference {
		if mask&t.bit != 0 {
			return t.name
		}
	}
	return "unknown"
}

// ipMethodName maps MMBearerIpMethod.
func ipMethodName(v uint32) string {
	switch v {
	case 1:
		return "ppp"
	case 2:
		return "static"
	case 3:
		return "dhcp"
	}
	return ""
}

// MMBearerIpFamily and MMBearerAllowedAuth values Simple.Connect takes.
const (
	ipFamilyV4   uint32 = 1 << 0
	ipFamilyV6   uint32 = 1 << 1
	ipFamilyV4V6 uint32 = 1 << 2

	authNone uint32 = 1 << 0
	authPAP  uint32 = 1 << 1
	authCHAP uint32 = 1 << 2
)

// ipFamily maps the ConnectParams ip type; ok is false for a name
// ModemManager has no value for.
func ipFamily(name string) (uint32, bool) {
	switch name {
	case "":
		return 0, true
	case "ipv4":
		return ipFamilyV4, true
	case "ipv6":
		return ipFamilyV6, true
	case "ipv4v6":
		return ipFamilyV4V6, true
	}
	return 0, false
}

// allowedAuth maps the ConnectParams auth; "" leaves the choice to the modem.
func allowedAuth(name string) (uint32, bool) {
	switch name {
	case "", "any":
		return 0, true
	case "none":
		return authNone, true
	case "pap":
		return authPAP, true
	case "chap":
		return authCHAP, true
	case "pap-chap", "pap,chap":
		return authPAP | authCHAP, true
	}
	return 0, false
}
