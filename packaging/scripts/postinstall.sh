#!/bin/sh
# simproof on systemd systems (deb postinst, rpm %post): runs once the
# package's files are in place. Idempotent: an upgrade or a re-run changes
# nothing that is already right. It does not enable or start the service:
# simproofd needs modems and credentials configured first.
set -e

# The system user simproofd runs as, in group dialout for the AT ports.
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers /usr/lib/sysusers.d/simproof.conf
else
	# systemd without sysusers (before 215) or a chroot without it.
	nologin=/bin/false
	for s in /usr/sbin/nologin /sbin/nologin; do
		if [ -x "$s" ]; then nologin=$s; break; fi
	done
	getent group simproof >/dev/null || groupadd --system simproof
	getent passwd simproof >/dev/null ||
		useradd --system --gid simproof --home-dir /var/lib/simproof --no-create-home \
			--shell "$nologin" --comment "simproof SIM verification agent" simproof
	if getent group dialout >/dev/null; then
		usermod -a -G dialout simproof
	fi
fi

# The journal's directory and the socket's directory.
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create /usr/lib/tmpfiles.d/simproof.conf || true
fi

if [ -d /run/systemd/system ]; then
	# New or changed units; a running daemon picks up the new binary.
	systemctl daemon-reload || true
	systemctl try-restart simproofd.service || true
fi
exit 0
