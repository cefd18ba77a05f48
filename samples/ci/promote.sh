#!/usr/bin/env bash
# Promote the gateway image QA tested into the production registry, by digest.
#
#   samples/ci/promote.sh QA_IMAGE PROD_REPOSITORY
#
#   QA_IMAGE         the image QA deployed, e.g. the API's status.image:
#                    qa-registry.example.com/apis/petstore@sha256:…
#                    (or repo:<version>-<inputs digest[:12]>)
#   PROD_REPOSITORY  e.g. registry.example.com/apis/petstore
#
# Environment (all optional):
#   DOCKER_CONFIG_JSON  path of a docker config.json with credentials for both
#                       registries (default: the runner's keychain)
#   REGISTRY_CA         PEM file with the CA of a private registry
#   GATEKILN_INSECURE_REGISTRY  host:port of a registry served over plain HTTP
#                       (a local QA registry); every other one is HTTPS only
#   DRY_RUN=1           only report what would be copied
#   SKIP_ATTACHED=1     copy the image without its signatures, attestations,
#                       SBOMs and referrers
#
# The image keeps its digest, so the production operator, which computes the
# same <version>-<inputs digest[:12]> tag from the same definition, finds it
# and never builds. Exit status: 0 promoted or already there, 3 credentials
# refused, 4 QA image missing, 5 digest mismatch.
set -euo pipefail

src=${1:?usage: promote.sh QA_IMAGE PROD_REPOSITORY}
dst=${2:?usage: promote.sh QA_IMAGE PROD_REPOSITORY}

args=(promote "$src" "$dst")
[ -n "${DOCKER_CONFIG_JSON:-}" ] && args+=(--docker-config "$DOCKER_CONFIG_JSON")
[ -n "${REGISTRY_CA:-}" ] && args+=(--registry-ca "$REGISTRY_CA")
[ -n "${GATEKILN_INSECURE_REGISTRY:-}" ] && args+=(--insecure-registry "$GATEKILN_INSECURE_REGISTRY")
[ "${DRY_RUN:-0}" = 1 ] && args+=(--dry-run)
[ "${SKIP_ATTACHED:-0}" = 1 ] && args+=(--skip-attached)

out=$(gatekiln "${args[@]}")
echo "$out"
# The last line is the production image by digest; hand it to the next step.
image=$(tail -n1 <<<"$out")
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  echo "image=$image" >>"$GITHUB_OUTPUT"
fi
