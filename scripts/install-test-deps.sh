#!/usr/bin/env bash
# Installs the system packages the tests use. As root it installs what is
# missing with apt-get (after apt-get update); otherwise it says what the
# root-only tests will skip.
set -euo pipefail
pkgs=(iproute2 dbus modemmanager python3-dbusmock nftables)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "test dependencies present: ${pkgs[*]}"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "not root: cannot install ${missing[*]}; tests that need them will skip and say why"
	exit 0
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
