# hack/cluster.mk — control-plane binaries for envtest and a local single-node
# Kubernetes cluster, all built from the Go module proxy (no prebuilt downloads,
# no Docker). Included by the top-level Makefile (`-include hack/*.mk`); it also
# works alone: `make -f hack/cluster.mk cluster-up`.
#
#   make envtest-bins   bin/envtest/{kube-apiserver,kube-controller-manager,etcd}
#   make cluster-bins   + kube-scheduler, kubelet, kube-proxy, kubectl, containerd,
#                         cluster-dns, cri-cleanup, the image tool and the pause binary
#   make cluster-up     start the cluster (bin/cluster/admin.kubeconfig)
#   make cluster-down   stop it and leave the machine as it was
#   make pause-image    push the pause image to the cluster's registry (cluster-up does it)
#
# Outputs are plain files under bin/ that depend on the wrapper modules'
# go.mod/go.sum, so a warm make does nothing; a cold build is ~10 minutes.

_cluster_mk_goal := $(.DEFAULT_GOAL)

CLUSTER_GO       ?= go
CLUSTER_GOENV    := GOWORK=off CGO_ENABLED=0
K8S_VERSION      := $(shell awk '$$1=="require" && $$2=="k8s.io/kubernetes" {print $$3}' hack/k8s/go.mod)
K8S_MINOR        := $(word 2,$(subst ., ,$(K8S_VERSION)))
K8S_LDFLAGS      := -s -w $(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
                      -X $(p).gitVersion=$(K8S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(K8S_MINOR) \
                      -X $(p).gitTreeState=clean -X $(p).buildDate=1970-01-01T00:00:00Z)
CONTAINERD_TAGS  := no_btrfs,no_devmapper,no_zfs,no_aufs

KUBEBUILDER_ASSETS ?= $(abspath bin/envtest)
export KUBEBUILDER_ASSETS
# One cluster per machine (it owns cni0, port 6443, iptables chains): every
# checkout's tests and scripts take this lock (hack/cluster/env.sh, test/cluster).
CLUSTER_LOCK ?= /run/gatekiln-cluster.lock
export CLUSTER_LOCK

ENVTEST_BINS := bin/envtest/kube-apiserver bin/envtest/kube-controller-manager bin/envtest/etcd
K8S_NODE_BINS := bin/k8s/kube-scheduler bin/k8s/kubelet bin/k8s/kube-proxy bin/k8s/kubectl bin/k8s/cri-cleanup bin/k8s/cluster-dns
CONTAINERD_BINS := bin/containerd/containerd bin/containerd/containerd-shim-runc-v2 bin/containerd/ctr
IMAGES_BINS := bin/images/images bin/images/pause
CLUSTER_BINS := $(ENVTEST_BINS) $(K8S_NODE_BINS) $(CONTAINERD_BINS) $(IMAGES_BINS)

TEST_DEPS += envtest-bins cluster-bins

.PHONY: envtest-bins cluster-bins cluster-up cluster-down pause-image

envtest-bins: $(ENVTEST_BINS)
cluster-bins: $(CLUSTER_BINS)

# One `go build` per module builds several binaries sharing one compile.
bin/envtest/kube-apiserver bin/envtest/kube-controller-manager &: hack/k8s/go.mod hack/k8s/go.sum
	@mkdir -p bin/envtest
	cd hack/k8s && $(CLUSTER_GOENV) $(CLUSTER_GO) build -buildvcs=false -trimpath -ldflags "$(K8S_LDFLAGS)" -o $(abspath bin/envtest)/ \
	  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
	@touch bin/envtest/kube-apiserver bin/envtest/kube-controller-manager

bin/envtest/etcd: hack/etcd/go.mod hack/etcd/go.sum
	@mkdir -p bin/envtest
	cd hack/etcd && $(CLUSTER_GOENV) $(CLUSTER_GO) build -buildvcs=false -trimpath -ldflags "-s -w" -o $(abspath $@) go.etcd.io/etcd/server/v3
	@touch $@

$(K8S_NODE_BINS) &: hack/k8s/go.mod hack/k8s/go.sum hack/k8s/cri-cleanup/main.go hack/k8s/cluster-dns/main.go
	@mkdir -p bin/k8s
	cd hack/k8s && $(CLUSTER_GOENV) $(CLUSTER_GO) build -buildvcs=false -trimpath -ldflags "$(K8S_LDFLAGS)" -o $(abspath bin/k8s)/ \
	  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl ./cri-cleanup ./cluster-dns
	@touch $(K8S_NODE_BINS)

$(CONTAINERD_BINS) &: hack/containerd/go.mod hack/containerd/go.sum
	@mkdir -p bin/containerd
	cd hack/containerd && $(CLUSTER_GOENV) $(CLUSTER_GO) build -buildvcs=false -trimpath -tags $(CONTAINERD_TAGS) -ldflags "-s -w" -o $(abspath bin/containerd)/ \
	  github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
	  github.com/containerd/containerd/v2/cmd/ctr
	@touch $(CONTAINERD_BINS)

bin/images/images: hack/images/go.mod hack/images/go.sum $(wildcard hack/images/*.go)
	@mkdir -p bin/images
	cd hack/images && $(CLUSTER_GOENV) $(CLUSTER_GO) build -buildvcs=false -trimpath -o $(abspath $@) .

bin/images/pause: hack/images/go.mod hack/images/pause/main.go
	@mkdir -p bin/images
	cd hack/images && $(CLUSTER_GOENV) $(CLUSTER_GO) build -buildvcs=false -trimpath -ldflags "-s -w" -o $(abspath $@) ./pause

cluster-up: cluster-bins
	hack/cluster/up.sh

cluster-down:
	hack/cluster/down.sh

# The registry runs only while the cluster is up; up.sh pushes this image itself.
pause-image: bin/images/images bin/images/pause
	hack/cluster/push-pause.sh

.DEFAULT_GOAL := $(_cluster_mk_goal)
