# Yocto/OpenEmbedded recipe for simproof. Copy into a layer
# (recipes-connectivity/simproof/) and `bitbake simproof`. Written for Yocto
# 4.0+ (kirkstone, scarthgap); not built in simproof's own CI, which has no
# Yocto build environment.
SUMMARY = "SIM verification agent: proves a device's phone number over its own modem"
DESCRIPTION = "simproofd drives cellular modems (ModemManager or raw AT), brings up \
the SIM's own data session, pins verification traffic to it and runs IDlayr \
PhoneCheck and PlasGate IP Verification checks behind a Unix-socket HTTP API."
HOMEPAGE = "https://github.com/simproof/simproof"
SECTION = "net"
# No licence has been chosen for simproof yet.
LICENSE = "CLOSED"

SRC_URI = "git://github.com/simproof/simproof.git;protocol=https;branch=main;destsuffix=${GO_SRCURI_DESTSUFFIX}"
SRCREV = "${AUTOREV}"
PV = "0.0.0+git${SRCPV}"

GO_IMPORT = "github.com/simproof/simproof"
GO_INSTALL = "${GO_IMPORT}/cmd/simproofd ${GO_IMPORT}/cmd/simproof"
# Static, like every other simproof build: no libc dependency on the target.
export CGO_ENABLED = "0"
GO_LINKSHARED = ""
GOBUILDFLAGS:append = " -trimpath"
GO_EXTRA_LDFLAGS = "-s -w -X ${GO_IMPORT}/internal/version.Version=${PV}"

inherit go-mod systemd useradd

# go-mod resolves go.mod's modules during do_compile.
do_compile[network] = "1"

# Installed but not enabled: the agent needs modems and credentials first.
SYSTEMD_PACKAGES = "${PN}"
SYSTEMD_SERVICE:${PN} = "simproofd.socket simproofd.service"
SYSTEMD_AUTO_ENABLE:${PN} = "disable"

# The user simproofd.service runs as, in dialout for the AT ports (the same
# account systemd/simproof.sysusers describes).
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system simproof"
USERADD_PARAM:${PN} = "--system --gid simproof --groups dialout --home-dir /var/lib/simproof \
    --no-create-home --shell /sbin/nologin simproof"

do_install:append() {
	src=${S}/src/${GO_IMPORT}
	install -d ${D}${systemd_system_unitdir}/simproofd.service.d
	install -m 0644 $src/systemd/simproofd.service ${D}${systemd_system_unitdir}/
	install -m 0644 $src/systemd/simproofd.socket ${D}${systemd_system_unitdir}/
	install -m 0644 $src/systemd/modemmanager.conf ${D}${systemd_system_unitdir}/simproofd.service.d/
	install -d ${D}${nonarch_libdir}/tmpfiles.d
	install -m 0644 $src/systemd/simproof.tmpfiles ${D}${nonarch_libdir}/tmpfiles.d/simproof.conf
	install -d ${D}${sysconfdir}/simproof
	install -m 0644 $src/configs/simproof.yaml ${D}${sysconfdir}/simproof/simproof.yaml
	install -d ${D}${datadir}/polkit-1/rules.d
	install -m 0644 $src/packaging/polkit/50-simproof.rules ${D}${datadir}/polkit-1/rules.d/
	install -d ${D}${docdir}/${BPN}
	install -m 0644 $src/README.md ${D}${docdir}/${BPN}/README.md
}

FILES:${PN} += " \
    ${systemd_system_unitdir} \
    ${nonarch_libdir}/tmpfiles.d \
    ${datadir}/polkit-1/rules.d \
"
CONFFILES:${PN} = "${sysconfdir}/simproof/simproof.yaml"
RRECOMMENDS:${PN} = "modemmanager"
