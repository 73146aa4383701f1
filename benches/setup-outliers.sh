#!/usr/bin/env bash
# Loopback call set-up, 50 demo calls (issue 13 item 6): p50, p95 and the
# slowest, from alice's invite to bob hearing the first frame, as the demo
# prints it. Compare two binaries in one run (say the one before a fix and
# the one after) by naming both; each is run in turn, call by call, so both
# see the same machine load.
# Usage: benches/setup-outliers.sh [CALLS] BINARY [BINARY...]
# e.g.   benches/setup-outliers.sh 50 target/debug/cryptic-call
set -euo pipefail
calls=50
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then calls=$1; shift; fi
[ $# -ge 1 ] || { echo "usage: $0 [CALLS] BINARY [BINARY...]" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 "$calls"); do
  n=0
  for bin in "$@"; do
    n=$((n + 1))
    "$bin" demo --seconds 1 --output "$work/d.wav" > "$work/out.txt" 2>&1 || true
    grep -h 'set-up time' "$work/out.txt" | awk '{print $4}' | tr -d 'ms' >> "$work/setup-$n.txt" || true
  done
done
n=0
for bin in "$@"; do
  n=$((n + 1))
  sort -n "$work/setup-$n.txt" | awk -v bin="$bin" '
    {a[NR]=$1}
    END {
      if (!NR) { print bin ": no set-up time"; exit }
      p50 = a[int((NR + 1) / 2)]; i95 = int(NR * 0.95 + 0.999); if (i95 > NR) i95 = NR
      printf "%s: %d calls, set-up p50 %s ms, p95 %s ms, max %s ms\n", bin, NR, p50, a[i95], a[NR]
    }'
done
