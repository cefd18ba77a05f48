# hack/operator.mk — what the operator's tests and benchmark need.
# Included by the top-level Makefile (`-include hack/*.mk`).
#
#   make bench-operator [BENCH_APIS=1000]   1,000 APIs in envtest, Direct builds
#                                           to a loopback registry (bench/operator)
#
# The envtest tests (operator/...) run a real kube-apiserver and etcd from
# bin/envtest (built by hack/cluster.mk's envtest-bins) and Debian's
# docker-registry (hack/apt-packages.txt).

TEST_DEPS += envtest-bins

KUBEBUILDER_ASSETS ?= $(abspath bin/envtest)
export KUBEBUILDER_ASSETS

# `make verify` regenerates golden files, TestGoldenDeploy's among them.
verify: envtest-bins

.PHONY: bench-operator
bench-operator: envtest-bins ## benchmark the operator: BENCH_APIS APIs to Ready, peak RSS, resync writes
	$(GO) run ./bench/operator
