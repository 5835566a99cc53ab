#!/usr/bin/env bash
# Installs the system packages the tests use. As root it installs what is
# missing with apt-get (after apt-get update); otherwise it says what the
# root-only tests will skip.
set -euo pipefail
pkgs=(iproute2 dbus modemmanager python3-dbusmock nftables)
# packaging/ tests: systemd-analyze, systemd-sysusers/-tmpfiles; lintian;
# rpm to inspect the .rpm (dpkg-deb comes with dpkg).
pkgs+=(systemd lintian rpm)
# nfpm builds the packages; pinned (v2.46+ needs a module the proxy refuses).
if ! "$(dirname "$0")/packaging/nfpm.sh" >/dev/null; then
	echo "nfpm could not be installed; packaging tests will skip and say why"
fi
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
