#!/usr/bin/env bash
# What the policies cost: gatekiln-gateway throughput with JWT + rate limit +
# request validation on, as a ratio to the same gateway with none, in one run;
# and the Redis-backed limit check's p99 at 64 concurrent requests, unpaced and
# paced (the leased path is the headline; the exact path is printed too). Needs wrk,
# taskset and redis-server (installed from Debian when missing). BENCH_SECONDS
# shortens each run. Last line: "ratio policies/plain: <x.xx>" (target >= 0.80;
# Redis check p99 target <= 1 ms).
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
  apt-get install -y "${missing[@]}" >/dev/null
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/gatekiln-gateway" ./cmd/gatekiln-gateway
go build -o "$bin/policies-bench" ./bench/policies
"$bin/policies-bench" -gateway "$bin/gatekiln-gateway" "$@"
