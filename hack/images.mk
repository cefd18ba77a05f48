# hack/images.mk — images: the Kaniko executor built from the Go module proxy,
# its image, the gateway runtime base image, and the image benchmark.
# Included by the top-level Makefile (`-include hack/*.mk`).
#
#   make kaniko                        bin/kaniko/executor (v1.24.0, cached; ~4 min cold)
#   make kaniko-image REGISTRY=host:port [REGISTRY_INSECURE=1] [REGISTRY_CA=ca.pem]
#                                      push REGISTRY/kaniko/executor:v1.24.0 and :v1.24.0-debug
#   make runtime-image REPO=host:port/gatekiln/runtime [REGISTRY_INSECURE=1] [REGISTRY_CA=ca.pem]
#                                      build gatekiln-gateway for linux/amd64+arm64, push, print repo@sha256:…
#   make bench-images                  Direct vs floor vs Kaniko vs skip (bench/images)

KANIKO_VERSION ?= v1.24.0
KANIKO_EXECUTOR := bin/kaniko/executor

TEST_DEPS += kaniko

.PHONY: kaniko kaniko-image runtime-image bench-images

kaniko: $(KANIKO_EXECUTOR) ## build the Kaniko executor from the Go module proxy

# The script names the version; a new version means a new script, so the
# executor is rebuilt only when the script changes.
$(KANIKO_EXECUTOR): hack/kaniko/build-executor.sh
	KANIKO_VERSION=$(KANIKO_VERSION) hack/kaniko/build-executor.sh $(abspath $@)

_images_registry_flags = $(if $(REGISTRY_INSECURE),--insecure-registry=$(firstword $(subst /, ,$(or $(REGISTRY),$(REPO)))))$(if $(REGISTRY_CA), --registry-ca=$(REGISTRY_CA))

kaniko-image: $(KANIKO_EXECUTOR) ## push the executor image: make kaniko-image REGISTRY=host:port
	@test -n "$(REGISTRY)" || { echo "kaniko-image: set REGISTRY=host:port"; exit 1; }
	$(GO) run ./hack/kaniko/image -executor $(KANIKO_EXECUTOR) -repo $(REGISTRY)/kaniko/executor -version $(KANIKO_VERSION) \
	  $(if $(REGISTRY_INSECURE),-insecure) $(if $(REGISTRY_CA),-registry-ca $(REGISTRY_CA))

runtime-image: ## build and push the gateway runtime base image: make runtime-image REPO=host:port/gatekiln/runtime
	@test -n "$(REPO)" || { echo "runtime-image: set REPO=host:port/path"; exit 1; }
	$(GO) run ./cmd/gatekiln runtime-image --push $(REPO) $(_images_registry_flags)

bench-images: $(KANIKO_EXECUTOR) ## benchmark image builds: Direct, floor, Kaniko, skip
	$(GO) run ./bench/images
