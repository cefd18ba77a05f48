#!/usr/bin/env bash
# fuzz.sh DIR TARGET FUZZTIME: runs one fuzz target (what `make fuzz-short`
# does for each).
#
# Go 1.26's fuzzing coordinator can fail a run with "context deadline
# exceeded" when -fuzztime ends while a worker is mid-call (golang/go#75804,
# fixed in Go 1.27). Such a run found nothing and wrote no failing input, so it
# is run once more; any other failure, or a failing input, fails.
set -uo pipefail
if [ $# -ne 3 ]; then
  echo "usage: hack/fuzz.sh DIR TARGET FUZZTIME (e.g. ./gatewayruntime/router FuzzRouter 10s)" >&2
  exit 2
fi
dir=$1 target=$2 fuzztime=$3
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for attempt in 1 2; do
  "${GO:-go}" test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$dir" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 0 ]; then
    exit 0
  fi
  if [ "$attempt" -eq 1 ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
    echo "fuzz: $target stopped on Go's -fuzztime race (golang/go#75804), no failing input; running it again"
    continue
  fi
  exit "$rc"
done
