#!/usr/bin/env bash
# Start a real single-node Kubernetes on this machine, in the spirit of
# Kubernetes' hack/local-up-cluster.sh: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd (+ runc, CNI bridge),
# kubelet, kube-proxy (iptables) and a registry, all as plain processes.
#
# Needs root and `make cluster-bins`. Writes bin/cluster/admin.kubeconfig and
# bin/cluster/env (REGISTRY=…, KUBECONFIG=…). Idempotent: a healthy cluster
# is left alone; a broken or half-started one is torn down and started anew.
# hack/cluster/down.sh undoes everything.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

[[ $(id -u) == 0 ]] || die "cluster-up needs root"
for b in "$ENVTEST_BIN"/{etcd,kube-apiserver,kube-controller-manager} "$K8S_BIN"/{kube-scheduler,kubelet,kube-proxy,kubectl,cri-cleanup,cluster-dns} \
  "$CTRD_BIN"/{containerd,containerd-shim-runc-v2} "$IMAGES_BIN"/{images,pause}; do
  [[ -x $b ]] || die "$b is missing: run make cluster-bins"
done
for b in "$RUNC" "$CNI_BIN/bridge" "$CNI_BIN/host-local" "$CNI_BIN/loopback" "$CNI_BIN/portmap" "$REGISTRY_BIN" iptables ip openssl; do
  command -v "$b" >/dev/null || die "$b is missing: apt-get install \$(cat hack/apt-packages.txt)"
done

cluster_lock
if pid_alive kubelet && [[ -s $KUBECONFIG_ADMIN ]] && kctl get --raw /readyz >/dev/null 2>&1; then
  log "cluster already up ($KUBECONFIG_ADMIN)"
  exit 0
fi
if [[ -d $PIDS || -d $HOSTSTATE ]]; then
  log "leftovers of an earlier cluster: tearing them down first"
  "$(dirname "${BASH_SOURCE[0]}")/down.sh"
fi

T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1fs", b-a}'; }

# ---------------------------------------------------------------- host state
# Record what we are about to change, before changing it.
mkdir -p "$HOSTSTATE"
sysctl -a 2>/dev/null | grep -E "$SYSCTL_PREFIXES" | sed 's/ = /=/' >"$HOSTSTATE/sysctl" || true
: >"$HOSTSTATE/paths"
for p in "${HOST_PATHS[@]}"; do [[ -e $p || -L $p ]] && echo "$p" >>"$HOSTSTATE/paths"; done
ls -d /sys/fs/cgroup/*/*/ 2>/dev/null >"$HOSTSTATE/cgroups" || true
touch "$HOSTSTATE/recorded"
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  rm -rf "$HOSTSTATE"
  die "a network interface $BRIDGE exists that this cluster did not create"
fi
# Whatever goes wrong from here on, undo what was done (logs stay in bin/cluster/logs).
trap 'rc=$?; if ((rc != 0)); then log "cluster-up failed: tearing down (logs: $LOGS)"; "$(dirname "${BASH_SOURCE[0]}")/down.sh" || true; fi' EXIT

rm -rf "$CL"
mkdir -p "$CL" "$PKI" "$LOGS" "$PIDS" "$RUNDIR" "$CL"/{etcd,kubelet,pod-logs,cni/net.d,cni/ipam,registry,flexvolume,volume-plugins,containerd/root,containerd/state,containerd/certs.d}

# ---------------------------------------------------------------- network
# A bridge that exists before any Pod: it carries the node IP, so the
# apiserver, the kubelet and the registry are reachable from the node and
# from Pods alike, and never from outside. No NAT, and forwarding between the
# bridge and any other interface is dropped.
ip link add "$BRIDGE" type bridge
ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Service IPs from the node go to the bridge too (kube-proxy DNATs them);
# an unassigned one dies there instead of following the default route.
ip route add "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
iptables -w -t mangle -N GATEKILN-FORWARD
iptables -w -t mangle -A GATEKILN-FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -j DROP
iptables -w -t mangle -A GATEKILN-FORWARD -o "$BRIDGE" ! -i "$BRIDGE" -j DROP
iptables -w -t mangle -I FORWARD 1 -j GATEKILN-FORWARD
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || log "warning: br_netfilter not loaded"

# ---------------------------------------------------------------- PKI
openssl_quiet() { openssl "$@" 2>/dev/null; }
openssl_quiet req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 30 \
  -subj "/CN=gatekiln-local-ca" -keyout "$PKI/ca.key" -out "$PKI/ca.crt"
# cert NAME SUBJECT [SAN]: a key and a certificate signed by the cluster CA.
cert() {
  local name=$1 subj=$2 san=${3:-} ext
  ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth"
  [[ -n $san ]] && ext+=$'\n'"subjectAltName=$san"
  openssl_quiet req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "$subj" \
    -keyout "$PKI/$name.key" -out "$PKI/$name.csr"
  openssl_quiet x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 30 -extfile <(echo "$ext") -out "$PKI/$name.crt"
  rm -f "$PKI/$name.csr"
}
cert apiserver "/CN=kube-apiserver" \
  "IP:$NODE_IP,IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert admin "/O=system:masters/CN=kubernetes-admin"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kube-proxy "/CN=system:kube-proxy"
cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME"
cert kubelet "/CN=$NODE_NAME" "IP:$NODE_IP,DNS:$NODE_NAME"
openssl_quiet genrsa -out "$PKI/sa.key" 2048
openssl_quiet rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"

# kubeconfig NAME CERT: a kubeconfig for one client certificate.
kubeconfig() {
  cat >"$CL/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: gatekiln
  cluster:
    server: $APISERVER
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $1
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$2.crt")
    client-key-data: $(base64 -w0 "$PKI/$2.key")
contexts:
- name: gatekiln
  context: {cluster: gatekiln, user: $1}
current-context: gatekiln
EOF
}
kubeconfig admin admin
kubeconfig controller-manager controller-manager
kubeconfig scheduler scheduler
kubeconfig kube-proxy kube-proxy
kubeconfig kubelet kubelet-client

cat >"$CL/env" <<EOF
KUBECONFIG=$KUBECONFIG_ADMIN
KUBECTL=$K8S_BIN/kubectl
REGISTRY=$REGISTRY
NODE_IP=$NODE_IP
POD_CIDR=$POD_CIDR
SERVICE_CIDR=$SERVICE_CIDR
EOF

# ---------------------------------------------------------------- processes
# start NAME CMD…: run CMD in its own session, logs in $LOGS/NAME.log, PID in $PIDS/NAME.pid.
start() {
  local name=$1; shift
  setsid "$@" </dev/null >"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
}
# wait_for WHAT SECONDS CMD…: retry CMD until it succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what not ready after ${secs}s (logs: $LOGS)"
    sleep 0.2
  done
  log "$what ready ($(elapsed))"
}
alive() { pid_alive "$1" || { tail -20 "$LOGS/$1.log" >&2; return 1; }; }


start etcd "$ENVTEST_BIN/etcd" --name gatekiln --data-dir "$CL/etcd" \
  --listen-client-urls "http://$ETCD_CLIENT" --advertise-client-urls "http://$ETCD_CLIENT" \
  --listen-peer-urls "http://$ETCD_PEER" --initial-advertise-peer-urls "http://$ETCD_PEER" \
  --initial-cluster "gatekiln=http://$ETCD_PEER" --unsafe-no-fsync --quota-backend-bytes 2147483648
wait_for etcd 30 curl -sf "http://$ETCD_CLIENT/health"

start kube-apiserver "$ENVTEST_BIN/kube-apiserver" \
  --etcd-servers "http://$ETCD_CLIENT" \
  --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$API_PORT" \
  --cert-dir "$PKI/apiserver" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --allow-privileged=true --profiling=false --v=1
wait_for kube-apiserver 90 kctl get --raw /readyz

start kube-controller-manager "$ENVTEST_BIN/kube-controller-manager" \
  --kubeconfig "$CL/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$CL/controller-manager.kubeconfig" --authorization-kubeconfig "$CL/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --cert-dir "$PKI/controller-manager" \
  --controllers '*' --flex-volume-plugin-dir "$CL/flexvolume" \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --use-service-account-credentials=true --leader-elect=false --profiling=false --v=1

start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig "$CL/scheduler.kubeconfig" \
  --authentication-kubeconfig "$CL/scheduler.kubeconfig" --authorization-kubeconfig "$CL/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1

# The registry: Debian's docker-registry on the bridge address, plain HTTP.
cat >"$CL/registry.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $CL/registry}
  delete: {enabled: true}
http:
  addr: $REGISTRY
EOF
start registry "$REGISTRY_BIN" serve "$CL/registry.yml"
wait_for registry 20 curl -sf "http://$REGISTRY/v2/"
"$IMAGES_BIN/images" pause --insecure --ref "$PAUSE_IMAGE" --binary "$IMAGES_BIN/pause" >"$CL/pause-image" \
  || die "pushing the pause image failed"
log "pause image $(cat "$CL/pause-image")"

# containerd: every path under bin/cluster, plugins that would touch the
# host's own paths disabled, the registry as plain HTTP and no other registry.
mkdir -p "$CL/containerd/certs.d/$REGISTRY" "$CL/containerd/certs.d/_default"
cat >"$CL/containerd/certs.d/$REGISTRY/hosts.toml" <<EOF
server = "http://$REGISTRY"
[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve", "push"]
EOF
# Any other registry resolves to a closed port on loopback: pulls fail at once
# and nothing leaves the machine.
cat >"$CL/containerd/certs.d/_default/hosts.toml" <<EOF
server = "http://127.0.0.1:9"
[host."http://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
EOF
cat >"$CL/containerd/config.toml" <<EOF
version = 4
root = "$CL/containerd/root"
state = "$CL/containerd/state"
imports = []
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.nri.v1.nri", "io.containerd.image-verifier.v1.bindir",
  "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs", "io.containerd.differ.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[plugins.'io.containerd.server.v1.grpc']
  address = "$CONTAINERD_SOCK"
[plugins.'io.containerd.server.v1.ttrpc']
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins.'io.containerd.server.v1.debug']
  address = ""
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = "$RUNDIR/s"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$CL/containerd/certs.d"
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$CNI_BIN"]
    conf_dir = "$CL/cni/net.d"
    max_conf_num = 1
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$RUNC"
        Root = "$RUNDIR/runc"
        SystemdCgroup = false
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
cat >"$CL/cni/net.d/10-gatekiln.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "gatekiln",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CL/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR", "gw": "$NODE_IP"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
# PATH: the runc shim is found next to containerd.
start containerd env PATH="$CTRD_BIN:$PATH" "$CTRD_BIN/containerd" --config "$CL/containerd/config.toml"
wait_for containerd 30 test -S "$CONTAINERD_SOCK"

# Cluster DNS on the bridge: Service names resolve, every other name is
# NXDOMAIN (nothing is forwarded). It reads Services with kube-proxy's
# identity. Pods with dnsPolicy Default get a resolver that points nowhere:
# the host's resolver is not theirs to reach.
start cluster-dns "$K8S_BIN/cluster-dns" -kubeconfig "$CL/kube-proxy.kubeconfig" -listen "$NODE_IP:53" -domain cluster.local
echo "nameserver 127.0.0.1" >"$CL/resolv.conf"
cat >"$CL/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: $CRI_ENDPOINT
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
podLogsDir: $CL/pod-logs
volumePluginDir: $CL/volume-plugins
resolvConf: $CL/resolv.conf
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
nodeStatusReportFrequency: 10s
# Each Pod is resynced, and its ConfigMap and Secret volumes refreshed, at
# this period (default 1m): on a one-node test cluster a Binding change then
# reaches the gateway's volume in seconds.
syncFrequency: 10s
EOF
start kubelet "$K8S_BIN/kubelet" --config "$CL/kubelet.yaml" --kubeconfig "$CL/kubelet.kubeconfig" \
  --root-dir "$CL/kubelet" --cert-dir "$PKI/kubelet-certs" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=1
TK=$(date +%s.%N)

cat >"$CL/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $CL/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $POD_CIDR
nodePortAddresses: ["$POD_CIDR"]
iptables: {localhostNodePorts: false, masqueradeAll: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s, udpTimeout: 0s, udpStreamTimeout: 0s}
EOF
start kube-proxy "$K8S_BIN/kube-proxy" --config "$CL/kube-proxy.yaml" --v=1

# dns_answers: the cluster DNS resolves the kubernetes Service.
dns_answers() {
  [[ $("$K8S_BIN/cluster-dns" -query kubernetes.default.svc.cluster.local. -server "$NODE_IP:53" 2>/dev/null) == "$KUBERNETES_SVC_IP" ]]
}
node_ready() {
  [[ $(kctl get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}
wait_for node-registered 60 kctl get node "$NODE_NAME"
wait_for node-Ready 90 node_ready
NODE_READY=$(awk -v a="$TK" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
wait_for default-serviceaccount 60 kctl -n default get serviceaccount default
wait_for cluster-dns 30 dns_answers
for p in etcd kube-apiserver kube-controller-manager kube-scheduler registry containerd kubelet kube-proxy cluster-dns; do
  alive "$p" || die "$p exited (log: $LOGS/$p.log)"
done
trap - EXIT
log "cluster up in $(elapsed) (node Ready ${NODE_READY}s after kubelet start)"
echo "export KUBECONFIG=$KUBECONFIG_ADMIN  # registry: $REGISTRY (plain HTTP; kubectl: $K8S_BIN/kubectl)"
