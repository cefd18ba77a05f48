# Sourced by up.sh, down.sh and push-pause.sh: where things are and which
# addresses the local cluster uses. Everything the cluster writes lives under
# bin/cluster; everything it changes on the host is recorded in
# bin/cluster-host/ before it is changed and put back by down.sh.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=$REPO/bin
CL=$BIN/cluster            # state of the running cluster (wiped by up.sh)
HOSTSTATE=$BIN/cluster-host # what the host looked like before up.sh (kept until down.sh succeeds)
PKI=$CL/pki
LOGS=$CL/logs
PIDS=$CL/pids

K8S_BIN=$BIN/k8s
ENVTEST_BIN=$BIN/envtest
CTRD_BIN=$BIN/containerd
IMAGES_BIN=$BIN/images
CNI_BIN=${CNI_BIN:-/usr/lib/cni}
RUNC=${RUNC:-$(command -v runc || echo /usr/sbin/runc)}
REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}

NODE_NAME=gatekiln-node
BRIDGE=cni0
# The bridge carries the node: its address is the node IP, the apiserver's
# address and the registry's. Pods get no default route, so nothing they send
# can leave the machine.
POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1
SERVICE_CIDR=10.96.0.0/24
KUBERNETES_SVC_IP=10.96.0.1
API_PORT=6443
APISERVER=https://$NODE_IP:$API_PORT
ETCD_CLIENT=127.0.0.1:12379
ETCD_PEER=127.0.0.1:12380
REGISTRY=$NODE_IP:5000
PAUSE_IMAGE=$REGISTRY/pause:3.10

KUBECONFIG_ADMIN=$CL/admin.kubeconfig
# Sockets live under /run: a unix socket path must stay under 108 bytes,
# whatever the checkout's path. down.sh removes this directory.
RUNDIR=/run/gatekiln-cluster
CONTAINERD_SOCK=$RUNDIR/containerd.sock
CRI_ENDPOINT=unix://$CONTAINERD_SOCK

# Host paths that the kubelet, containerd or the CNI plugins create on their
# own; down.sh removes those that did not exist before up.sh.
HOST_PATHS=(/var/log/containers /var/log/pods /var/lib/kubelet /var/lib/cni /run/containerd
  /run/netns /var/run/netns /run/nri /var/run/nri /etc/cni /opt/cni /opt/containerd /var/lib/containerd
  /etc/kubernetes /var/run/kubernetes /run/kubernetes /etc/cdi /var/run/cdi /run/cdi
  /usr/libexec/kubernetes /run/runc)

# sysctls the components may change; down.sh writes back the values recorded
# before up.sh for every key that starts with one of these.
SYSCTL_PREFIXES='^(kernel\.panic|kernel\.panic_on_oops|kernel\.keys\.root_max|vm\.overcommit_memory|vm\.panic_on_oom|net\.ipv4\.ip_forward|net\.ipv4\.conf\.(all|default|lo|eth0)\.|net\.ipv6\.conf\.(all|default|lo)\.|net\.bridge\.|net\.netfilter\.nf_conntrack_(max|tcp_timeout_established|tcp_timeout_close_wait|udp_timeout|udp_timeout_stream|tcp_be_liberal)|net\.nf_conntrack_max|net\.core\.somaxconn) '

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

kctl() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# pid_alive NAME: the process recorded in $PIDS/NAME.pid is running.
pid_alive() {
  local f=$PIDS/$1.pid
  [[ -s $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# cluster_lock: hold the cluster lock while this script runs, so that a test
# holding the cluster never has it pulled from under it. A test (test/cluster
# Up, or `flock $CLUSTER_LOCK make cluster-down`) holds the lock itself and
# runs these scripts as its children: the lock held by an ancestor counts as ours.
# The lock is machine-wide, not per checkout: the bridge, port 6443 and the
# iptables chains are the machine's, so two checkouts take turns too.
CLUSTER_LOCK=${CLUSTER_LOCK:-/run/gatekiln-cluster.lock}
cluster_lock() {
  local ino holders holder p
  [[ -n ${CLUSTER_LOCK_HELD:-} ]] && return 0 # taken by the script that runs this one
  mkdir -p "$(dirname "$CLUSTER_LOCK")"
  exec 9>>"$CLUSTER_LOCK"
  if flock -n 9; then
    export CLUSTER_LOCK_HELD=$$
    return 0
  fi
  ino=$(stat -c %i "$CLUSTER_LOCK")
  holders=$(awk -v ino="$ino" '$2 == "FLOCK" { n = split($6, a, ":"); if (a[n] == ino) print $5 }' /proc/locks)
  for holder in $holders; do
    p=$$
    while [[ -n $p && $p -gt 1 ]]; do
      if [[ $p == "$holder" ]]; then
        exec 9>&-
        return 0
      fi
      p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null)
    done
  done
  die "the cluster is in use: $CLUSTER_LOCK is held by pid $(echo $holders) ($(tr '\0' ' ' 2>/dev/null </proc/"${holders%% *}"/cmdline))"
}
