#!/usr/bin/env bash
# gatekiln-gateway vs nginx as reverse proxies, in one run (see main.go).
# Installs nginx and wrk from Debian when missing. BENCH_SECONDS shortens each
# wrk run. Last line: "ratio gateway/nginx: <x.xx>" (target >= 1.00).
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
  apt-get install -y "${missing[@]}" >/dev/null || { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
CGO_ENABLED=0 go build -trimpath -o "$bin/gatekiln-gateway" ./cmd/gatekiln-gateway
go build -o "$bin/gatekiln" ./cmd/gatekiln
go build -o "$bin/gateway-bench" ./bench/gateway
corpus=${CORPUS:-$(cd .. && pwd)/shared/corpus}
"$bin/gateway-bench" -gateway "$bin/gatekiln-gateway" -gatekiln "$bin/gatekiln" -corpus "$corpus" "$@"
