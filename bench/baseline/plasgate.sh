#!/bin/bash
# A PlasGate IP Verification (phone_verify) scripted the way integrators do
# it today: `curl --interface` walks the authenticate URL over the modem's
# interface up to the redirect_uri (not fetched: --max-redirs stops one hop
# short and %{redirect_url} is the redirect_uri with code and state), then
# curl exchanges the code server-side. The bench runs it inside the device
# namespace as the baseline simproof is compared with. Exit 0 verified,
# 1 not verified, 3 the check did not run.
#
# Environment: BASE (https://host:port), PRIVATE_KEY, SECRET, PHONE (digits,
# no +), REDIRECT_URI, IFACE (wwan0), CACERT (the API's CA, PEM).
set -euo pipefail
: "${BASE:?}" "${PRIVATE_KEY:?}" "${SECRET:?}" "${PHONE:?}" "${REDIRECT_URI:?}" "${IFACE:?}" "${CACERT:?}"
state=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

# authenticate → operator start → operator hop → callback → redirect_uri:
# four redirects; the fourth is not followed.
loc=$(curl -sS --cacert "$CACERT" --interface "$IFACE" -L --max-redirs 3 -b '' -o /dev/null \
	-w '%{redirect_url}' -G --data-urlencode "private_key=$PRIVATE_KEY" \
	--data-urlencode "login_hint=$PHONE" --data-urlencode "redirect_uri=$REDIRECT_URI" \
	--data-urlencode 'scope=phone_verify' --data-urlencode "state=$state" "$BASE/ip/authenticate" 2>/dev/null || true)
[[ $loc == "$REDIRECT_URI"* ]] || { echo "plasgate.sh: chain did not reach the redirect_uri" >&2; exit 3; }
[[ $loc =~ [?\&]error= ]] && exit 1
re='[?&]code=([^&#]+)'
[[ $loc =~ $re ]] || { echo "plasgate.sh: no code" >&2; exit 3; }
code=${BASH_REMATCH[1]}
re='[?&]state=([^&#]+)'
[[ $loc =~ $re && ${BASH_REMATCH[1]} == "$state" ]] || { echo "plasgate.sh: state mismatch" >&2; exit 3; }

res=$(curl -sS --fail --cacert "$CACERT" -H "X-Secret: $SECRET" -H 'Content-Type: application/json' \
	-d "{\"response_type\":\"code\",\"code\":\"$code\",\"state\":\"$state\",\"redirect_uri\":\"$REDIRECT_URI\",\"private_key\":\"$PRIVATE_KEY\"}" \
	"$BASE/ip/ip-auth")
[[ $res =~ \"status\":[[:space:]]*\"success\" && $res =~ \"phone_number_verified\":[[:space:]]*\"?true ]] && exit 0
exit 1
