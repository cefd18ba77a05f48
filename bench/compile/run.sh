#!/usr/bin/env bash
# Compile box/openapi.json with gatekiln and with kin-openapi alone, in one
# run; prints both medians, the compiler's peak RSS and, last,
# "ratio compile/kin-openapi: <x.xx>" (target: <= 1.5, peak RSS <= 200 MiB).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(mktemp -d)/compile-bench
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./bench/compile
"$bin" "$@"
