#!/bin/sh
# simproof on Alpine (apk post-install and post-upgrade): the system user, in
# group dialout for the AT ports, and a restart of a running daemon so it
# picks up the new binary. It does not add the service to a runlevel:
# simproofd needs modems and credentials configured first.
set -e
addgroup -S simproof 2>/dev/null || true
adduser -S -D -H -h /var/lib/simproof -s /sbin/nologin -G simproof \
	-g "simproof SIM verification agent" simproof 2>/dev/null || true
addgroup simproof dialout 2>/dev/null || true
if command -v rc-service >/dev/null 2>&1; then
	rc-service --ifstarted simproofd restart || true
fi
exit 0
