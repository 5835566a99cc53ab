#!/bin/sh
# Prints the size of every cross-built (already stripped: -s -w) binary under
# bin/linux-*/, as `make cross-sizes` shows it.
set -eu
cd "$(dirname "$0")/../.."
bin=${1:-bin}
printf '%-16s %-10s %10s %8s\n' target binary bytes MiB
for d in "$bin"/linux-*/; do
	t=$(basename "$d")
	for b in simproofd simproof; do
		f=$d$b
		[ -f "$f" ] || continue
		s=$(wc -c <"$f")
		printf '%-16s %-10s %10d %8s\n' "$t" "$b" "$s" "$(awk -v s="$s" 'BEGIN{printf "%.1f", s/1048576}')"
	done
done
