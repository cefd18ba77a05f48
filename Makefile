# Gatekiln. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := $(abspath bin)
export GOFLAGS ?= -buildvcs=false
export PATH := $(BIN):$(PATH)

# Fragments under hack/ add their own targets and append to TEST_DEPS what
# `make test` needs built first (envtest binaries, registries, executors...).
.DEFAULT_GOAL := help
TEST_DEPS :=
-include hack/*.mk

GO_TEST_FLAGS ?= -count=1 -timeout 75m
FUZZ_TIME ?= 10s

.PHONY: help build test test-unit fuzz-short lint generate verify tools clean
help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## build every binary into bin/
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

test: $(TEST_DEPS) ## run every test (what CI runs): unit, envtest, cluster, end to end, fuzz
	$(GO) test $(GO_TEST_FLAGS) ./...
	$(GO) test -tags pprof $(GO_TEST_FLAGS) -run TestPprof ./gatewayruntime/gateway
	$(MAKE) --no-print-directory test-e2e
	$(MAKE) --no-print-directory fuzz-short

test-unit: ## run the tests that need nothing prebuilt
	$(GO) test -short $(GO_TEST_FLAGS) ./...

# Each fuzz target runs briefly; a longer run is `make fuzz-short FUZZ_TIME=10m`.
FUZZ_TARGETS ?= $(shell grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u)
fuzz-short: ## run each fuzz target for FUZZ_TIME
	@for d in $(FUZZ_TARGETS); do \
	  for f in $$(grep -h '^func Fuzz' $$d/*_test.go | sed -E 's/func (Fuzz[A-Za-z0-9_]*).*/\1/'); do \
	    echo "fuzz $$d $$f"; GO=$(GO) hack/fuzz.sh $$d $$f $(FUZZ_TIME) || exit 1; \
	  done; \
	done

$(BIN)/golangci-lint: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint
$(BIN)/controller-gen: tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen
tools: $(BIN)/golangci-lint $(BIN)/controller-gen ## build pinned tools into bin/

lint: $(BIN)/golangci-lint ## gofmt, go mod tidy, go vet and golangci-lint
	@$(GO) mod tidy -diff >/dev/null || { echo "make lint: go.mod/go.sum are not tidy; run go mod tidy"; exit 1; }
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags pprof ./gatewayruntime/gateway
	$(BIN)/golangci-lint run ./...

generate: $(BIN)/controller-gen ## regenerate deepcopy, CRDs and RBAC
	$(BIN)/controller-gen object paths=./apis/...
	$(BIN)/controller-gen crd paths=./apis/... output:crd:artifacts:config=config/crd/bases
	@if [ -d operator ]; then $(BIN)/controller-gen rbac:roleName=gatekiln-operator paths=./operator/... output:rbac:artifacts:config=config/rbac; fi

# The packages with golden files: they define the -update flag (others would
# refuse it).
GOLDEN_PKGS = $(shell grep -rl --include='*_test.go' 'flag.Bool."update"' . | xargs -r -n1 dirname | sort -u)
verify: generate ## regenerate everything (code, golden files) and fail on any diff
	$(GO) test $(GOLDEN_PKGS) -count=1 -run 'Golden' -update >/dev/null
	@git add -N . ; git diff --exit-code || { echo "make verify: generated files differ; run make generate and go test ./... -update"; exit 1; }

clean: ## remove build outputs
	rm -rf $(BIN)
