#!/usr/bin/env bash
# The demo on a real network bench, as root: a device namespace whose modem
# interface wwan0 leads to a carrier namespace and whose eth0 (holding the
# default route) leads to an ISP; the emulated providers and operator sit
# behind both. simproofd runs in the device namespace with a simulated modem
# whose bearer is wwan0, so the checks' traffic must take the cellular path.
# Everything is created under a fresh prefix and removed on exit.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "netns-demo needs root (network namespaces); try: make demo" >&2; exit 2; }
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
P=spd$$
DIR=$(mktemp -d /tmp/simproof-netns-demo.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for n in dev car isp srv; do ip netns del "$P-$n" 2>/dev/null || true; done
	rm -rf "$DIR"
}
trap cleanup EXIT
ns() { ip netns exec "$P-$1" "${@:2}"; }
for n in dev car isp srv; do ip netns add "$P-$n"; ns "$n" ip link set lo up; done
for n in car isp srv; do ns "$n" sysctl -qw net.ipv4.ip_forward=1; done
veth() { ip link add "$2" netns "$P-$1" type veth peer name "$4" netns "$P-$3"; ns "$1" ip link set "$2" up; ns "$3" ip link set "$4" up; }
# server: 192.0.2.80 on its loopback, reached from the carrier and the ISP
ns srv ip addr add 192.0.2.80/32 dev lo
veth car c-srv srv s-car; ns car ip addr add 198.51.100.1/30 dev c-srv; ns srv ip addr add 198.51.100.2/30 dev s-car
veth isp i-srv srv s-isp; ns isp ip addr add 198.51.100.5/30 dev i-srv; ns srv ip addr add 198.51.100.6/30 dev s-isp
ns srv ip route add 100.64.0.0/10 via 198.51.100.1; ns srv ip route add 203.0.113.0/24 via 198.51.100.5
ns car ip route add default via 198.51.100.2; ns isp ip route add default via 198.51.100.6
# device: eth0 with the default route; wwan0 (the simulated modem's net device) to the carrier
veth dev eth0 isp i-eth0; ns dev ip addr add 203.0.113.2/24 dev eth0; ns isp ip addr add 203.0.113.1/24 dev i-eth0
ns dev ip route add default via 203.0.113.1
veth dev wwan0 car c-wwan0; ns car ip addr add 100.64.1.1/24 dev c-wwan0
ns dev ip link set wwan0 down   # simproof brings it up when the modem connects

ns srv "$BIN/simproof-emulator" --idlayr-listen 192.0.2.80:443 --plasgate-listen 192.0.2.80:8443 \
	--operator-listen 192.0.2.80:80 --subscriber 100.64.1.2=447700900000 --mobile-cidr 100.64.0.0/10 \
	--ca-out "$DIR/ca.pem" >"$DIR/emulator.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$DIR/ca.pem" ] && break; sleep 0.1; done
printf '{"credentials":[{"client_id":"emulator-client","client_secret":"s3cret+/=:emulator","data_residency":"eu"}]}' >"$DIR/tru.json"
printf 'emulator-private-key_xP4tZ-G7fn3Y' >"$DIR/plasgate.key"; printf '$5$rounds=535000$emulator$x-secret' >"$DIR/plasgate.secret"
chmod 600 "$DIR"/tru.json "$DIR"/plasgate.*
cat >"$DIR/simproof.yaml" <<YAML
socket: {path: $DIR/simproof.sock}
state_dir: $DIR/state
simulator: {modems: 1, dir: $DIR/tty, network: interfaces}
data: {manage_interface: always}
tls: {ca_file: $DIR/ca.pem}
providers:
  idlayr: {base_url: "https://192.0.2.80:443", credentials_file: $DIR/tru.json}
  plasgate: {base_url: "https://192.0.2.80:8443", private_key_file: $DIR/plasgate.key, secret_file: $DIR/plasgate.secret,
             redirect_uri: "https://app.example.test/callback"}
YAML
ns dev "$BIN/simproofd" --config "$DIR/simproof.yaml" >"$DIR/simproofd.log" 2>&1 &
PIDS+=($!)
S=("$BIN/simproof" --socket "$DIR/simproof.sock")
for _ in $(seq 100); do "${S[@]}" --json modems 2>/dev/null | grep -q '"imsi": "0' && break; sleep 0.1; done
say() { printf '\n$ %s\n' "$*"; }
tx() { ns dev cat /sys/class/net/eth0/statistics/tx_packets; }
say simproof modems; "${S[@]}" modems
ID=$("${S[@]}" --json modems | sed -n 's/.*"id": "\([0-9]*\)".*/\1/p' | head -1)
say simproof connect "$ID"; "${S[@]}" connect "$ID" | grep -E '^(id|state|data|ipv4)'
before=$(tx)
URL="https://192.0.2.80:8443/ip/authenticate?private_key=emulator-private-key_xP4tZ-G7fn3Y&login_hint=447700900000&redirect_uri=https%3A%2F%2Fapp.example.test%2Fcallback&scope=phone_verify&state=demo"
say simproof open-url --modem "$ID" --stop-at https://app.example.test/callback "'https://192.0.2.80:8443/ip/authenticate?…'"
"${S[@]}" open-url --modem "$ID" --stop-at https://app.example.test/callback "$URL"
rc=0
say simproof check --provider idlayr --phone +447700900000 --trace; "${S[@]}" check --provider idlayr --phone +447700900000 --trace || rc=$?
say simproof check --provider plasgate --phone +447700900000 --trace; "${S[@]}" check --provider plasgate --phone +447700900000 --trace || rc=$?
after=$(tx)
echo
echo "eth0 sent $((after - before)) packets during the device steps and server-side calls above"
echo "(server-side API calls — token, create, poll, exchange — take the device's default route, eth0;"
echo " every device-step hop above shows wwan0 and the SIM's address 100.64.1.2)"
exit $rc
