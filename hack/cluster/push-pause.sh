#!/usr/bin/env bash
# Push the pause image (a static Go program, hack/images/pause) to the
# cluster's registry. up.sh does this itself; this is for a running cluster.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
curl -sf "http://$REGISTRY/v2/" >/dev/null || die "no registry at $REGISTRY: run make cluster-up"
"$IMAGES_BIN/images" pause --insecure --ref "$PAUSE_IMAGE" --binary "$IMAGES_BIN/pause"
