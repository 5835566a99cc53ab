#!/bin/sh
# Prints simproof's package version in a form deb, rpm and apk all accept and
# order the same way: digits and dots only. The newest vX.Y.Z tag gives X.Y.Z
# (any pre-release suffix dropped), commits since it a fourth part (X.Y.Z.N);
# an untagged tree is 0.0.0.N, N counting every commit. The binaries carry
# the exact `git describe` string; this only has to sort.
set -eu
cd "$(dirname "$0")/../.."
if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null); then
	base=$(printf '%s\n' "${tag#v}" | sed -E 's/^([0-9]+(\.[0-9]+)*).*/\1/')
	n=$(git rev-list --count "$tag..HEAD")
else
	base=0.0.0
	n=$(git rev-list --count HEAD 2>/dev/null || echo 0)
fi
if [ "$n" -gt 0 ]; then
	echo "$base.$n"
else
	echo "$base"
fi
