# hack/e2e.mk — the end-to-end suite on the local cluster (test/e2e).
# Included by the top-level Makefile (`-include hack/*.mk`).
#
#   make e2e-bins                        bin/e2e/{gatekiln-operator,gatekiln,kubectl-add,echo,kaniko-image}
#   make operator-image REGISTRY=host:port [REGISTRY_INSECURE=1]
#                                        push REGISTRY/gatekiln/gatekiln-operator:latest, print it by digest
#   make e2e-images REGISTRY=host:port   the operator, runtime, Kaniko executor and echo images (plain HTTP)
#   make test-e2e                        run test/e2e (root): it brings the cluster up, pushes the
#                                        images, runs the scenario and brings the cluster down; the
#                                        recipe brings it down again whatever happened
#
# Every image is assembled with go-containerregistry (hack/images, hack/kaniko/image,
# gatekiln runtime-image): no Docker.

E2E_BIN      := bin/e2e
E2E_GOENV    := CGO_ENABLED=0
E2E_TIMEOUT  ?= 40m
E2E_RUN      ?= .

.PHONY: e2e-bins operator-image e2e-images test-e2e

# go build is incremental, so these rebuild only what changed.
e2e-bins:
	@mkdir -p $(E2E_BIN)
	$(E2E_GOENV) $(GO) build -trimpath -ldflags "-s -w" -o $(E2E_BIN)/ ./cmd/gatekiln-operator ./cmd/gatekiln ./cmd/kubectl-add ./test/e2e/echo
	$(GO) build -o $(E2E_BIN)/kaniko-image ./hack/kaniko/image

_e2e_insecure = $(if $(REGISTRY_INSECURE),--insecure)

operator-image: e2e-bins bin/images/images ## push the operator image: make operator-image REGISTRY=host:port
	@test -n "$(REGISTRY)" || { echo "operator-image: set REGISTRY=host:port"; exit 1; }
	bin/images/images push $(_e2e_insecure) --ca-certs --ref $(REGISTRY)/gatekiln/gatekiln-operator:latest \
	  --file /gatekiln-operator=$(E2E_BIN)/gatekiln-operator:0755 --entrypoint /gatekiln-operator --user 65532:65532

e2e-images: e2e-bins bin/images/images $(KANIKO_EXECUTOR)
	@test -n "$(REGISTRY)" || { echo "e2e-images: set REGISTRY=host:port"; exit 1; }
	$(MAKE) --no-print-directory operator-image REGISTRY=$(REGISTRY) REGISTRY_INSECURE=1
	bin/images/images push --insecure --ref $(REGISTRY)/e2e/echo:latest \
	  --file /echo=$(E2E_BIN)/echo:0755 --entrypoint /echo --user 65532:65532
	$(E2E_BIN)/gatekiln runtime-image --push $(REGISTRY)/gatekiln/runtime --platform linux/amd64 --insecure-registry=$(REGISTRY)
	$(E2E_BIN)/kaniko-image -executor $(KANIKO_EXECUTOR) -repo $(REGISTRY)/kaniko/executor -version $(KANIKO_VERSION) -insecure

# The test holds the cluster lock ($(CLUSTER_LOCK)) while it runs; the trap takes the lock too,
# so it never pulls the cluster from under another test package.
test-e2e: e2e-bins cluster-bins $(KANIKO_EXECUTOR)
	@status=0; \
	  $(GO) test -tags e2e -count=1 -timeout $(E2E_TIMEOUT) -v -run '$(E2E_RUN)' ./test/e2e/ || status=$$?; \
	  flock $(CLUSTER_LOCK) $(MAKE) --no-print-directory -f hack/cluster.mk cluster-down || status=1; \
	  exit $$status
