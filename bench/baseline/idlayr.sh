#!/bin/bash
# An IDlayr PhoneCheck (v0.1) scripted the way integrators do it today:
# curl for the server-side calls, a fresh token every time, and
# `curl --interface` following the check URL over the modem's interface.
# The bench runs it inside the device namespace as the baseline simproof is
# compared with. Exit 0 verified, 1 not verified, 3 the check did not run.
#
# Environment: BASE (https://host:port), CLIENT_ID, CLIENT_SECRET, PHONE
# (E.164 digits, no +), IFACE (wwan0), CACERT (the API's CA, PEM).
set -euo pipefail
: "${BASE:?}" "${CLIENT_ID:?}" "${CLIENT_SECRET:?}" "${PHONE:?}" "${IFACE:?}" "${CACERT:?}"
api=(curl -sS --fail --cacert "$CACERT")

tok=$("${api[@]}" -u "$CLIENT_ID:$CLIENT_SECRET" \
	-d 'grant_type=client_credentials&scope=phone_check' "$BASE/oauth2/v1/token")
re='"access_token":[[:space:]]*"([^"]+)"'
[[ $tok =~ $re ]] || { echo "idlayr.sh: no access_token" >&2; exit 3; }
auth="Authorization: Bearer ${BASH_REMATCH[1]}"

chk=$("${api[@]}" -H "$auth" -H 'Content-Type: application/json' \
	-d "{\"phone_number\":\"$PHONE\"}" "$BASE/phone_check/v0.1/checks")
re='"check_id":[[:space:]]*"([^"]+)"'
[[ $chk =~ $re ]] || { echo "idlayr.sh: no check_id" >&2; exit 3; }
id=${BASH_REMATCH[1]}
re='"check_url":[[:space:]]*\{[[:space:]]*"href":[[:space:]]*"([^"]+)"'
[[ $chk =~ $re ]] || { echo "idlayr.sh: no check_url" >&2; exit 3; }
check_url=${BASH_REMATCH[1]}

# The device step: over the modem only, following the operator's redirects
# with cookies on (-b '' switches curl's cookie engine on).
curl -sS --fail --cacert "$CACERT" --interface "$IFACE" -L --max-redirs 10 -b '' -o /dev/null "$check_url" ||
	{ echo "idlayr.sh: device step failed" >&2; exit 3; }

re='"status":[[:space:]]*"([A-Z]+)"'
for _ in $(seq 1 60); do
	res=$("${api[@]}" -H "$auth" "$BASE/phone_check/v0.1/checks/$id")
	[[ $res =~ $re ]] || { echo "idlayr.sh: no status" >&2; exit 3; }
	case ${BASH_REMATCH[1]} in
	COMPLETED)
		[[ $res =~ \"match\":[[:space:]]*true ]] && exit 0
		exit 1
		;;
	ACCEPTED | PENDING) sleep 0.5 ;;
	*) echo "idlayr.sh: check ${BASH_REMATCH[1]}" >&2; exit 3 ;;
	esac
done
exit 3
