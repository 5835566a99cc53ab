#!/bin/sh
# simproof: runs before the package's files go (deb prerm, rpm %preun).
# Only a real removal stops and disables the service; an upgrade leaves it
# running for postinstall's try-restart.
#   deb prerm: $1 = remove | upgrade | deconfigure | failed-upgrade
#   rpm %preun: $1 = 0 (erase) | 1 (upgrade)
set -e
case "$1" in
remove | deconfigure | 0) ;;
*) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl --no-reload disable --now simproofd.socket simproofd.service >/dev/null 2>&1 || true
fi
exit 0
