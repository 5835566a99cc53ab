#!/bin/sh
# Prints the path of nfpm v2.45.0, installing it with `go install` when it is
# missing. Pinned: v2.46 and later need a module the Go proxy here refuses.
set -eu
want=v2.45.0
gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin=$(go env GOPATH)/bin
for n in "$gobin/nfpm" "$(command -v nfpm 2>/dev/null || true)"; do
	if [ -n "$n" ] && [ -x "$n" ] && go version -m "$n" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/goreleaser/nfpm/v2[[:space:]]+$want[[:space:]]"; then
		echo "$n"
		exit 0
	fi
done
echo "installing nfpm $want" >&2
go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$want" >&2
echo "$gobin/nfpm"
