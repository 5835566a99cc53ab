#!/usr/bin/env bash
# Builds simproof's .deb, .rpm and .apk for each architecture into dist/ from
# the cross-built binaries in bin/linux-<arch>/ (`make cross`), with
# packaging/nfpm.yaml. `make packages` runs it.
#   ARCHES  which of amd64 arm64 armv7 (default: all three)
#   FORMATS which of deb rpm apk (default: all three)
#   DIST    output directory (default: dist)
set -euo pipefail
cd "$(dirname "$0")/../.."
nfpm=$(scripts/packaging/nfpm.sh)
version=${SIMPROOF_VERSION:-$(scripts/packaging/version.sh)}
dist=${DIST:-dist}
mkdir -p "$dist"
for arch in ${ARCHES:-amd64 arm64 armv7}; do
	case $arch in
	amd64 | arm64) nfpm_arch=$arch ;;
	armv7) nfpm_arch=arm7 ;; # nfpm's name: armhf (deb), armv7hl (rpm), armv7 (apk)
	*) echo "unknown arch $arch" >&2; exit 2 ;;
	esac
	bin=bin/linux-$arch
	for b in simproofd simproof; do
		[ -x "$bin/$b" ] || { echo "$bin/$b missing: run make cross" >&2; exit 1; }
	done
	for format in ${FORMATS:-deb rpm apk}; do
		SIMPROOF_ARCH=$nfpm_arch SIMPROOF_BIN=$bin SIMPROOF_VERSION=$version \
			"$nfpm" package --config packaging/nfpm.yaml --packager "$format" --target "$dist/"
	done
done
ls -l "$dist"
