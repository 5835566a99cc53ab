#!/bin/sh
# simproof on Alpine (apk pre-deinstall; upgrades run post-upgrade instead):
# stop the OpenRC service and drop it from every runlevel.
if command -v rc-service >/dev/null 2>&1; then
	rc-service --ifstarted simproofd stop || true
	rc-update -a del simproofd >/dev/null 2>&1 || true
fi
exit 0
