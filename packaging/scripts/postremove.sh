#!/bin/sh
# simproof: runs after the package's files are gone (deb postrm, rpm %postun).
#   deb postrm: $1 = remove | purge | upgrade | ...
#   rpm %postun: $1 = 0 (erase) | 1 (upgrade)
# The simproof user stays (files it owned may outlive the package). The check
# journal goes only on purge: it is the record of every check made.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
	rm -rf /var/lib/simproof /run/simproof
fi
exit 0
