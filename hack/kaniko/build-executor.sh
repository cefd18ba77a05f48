#!/usr/bin/env bash
# Builds the Kaniko executor from the Go module proxy (no prebuilt download is
# possible here). The proxy refuses @latest for this module, so the version is
# named. The module cache is read-only, so the build runs in a writable copy;
# the module zip omits vendor/, so dependencies come from the proxy (-mod=mod).
#
#   hack/kaniko/build-executor.sh OUT [GOARCH]
set -euo pipefail

out=${1:?usage: build-executor.sh OUT [GOARCH]}
arch=${2:-$(go env GOARCH)}
version=${KANIKO_VERSION:-v1.24.0}
module=github.com/GoogleContainerTools/kaniko

# go mod download runs outside any module (an empty directory, removed on
# exit like the build's copy of the sources).
empty=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$empty"; chmod -R u+w "$work" && rm -rf "$work"' EXIT
dir=$(cd "$empty" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "$module@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "build-executor: go mod download $module@$version gave no directory" >&2; exit 1; }

cp -R "$dir/." "$work/"
chmod -R u+w "$work"

mkdir -p "$(dirname "$out")"
cd "$work"
GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath \
  -ldflags "-s -w -X $module/pkg/version.version=$version" \
  -o "$out.tmp" ./cmd/executor
mv "$out.tmp" "$out"
