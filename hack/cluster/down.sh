#!/usr/bin/env bash
# Stop the local cluster that up.sh started and leave the machine as it was:
# every process it started (by PID, and any process still naming its state
# directory), every container, mount, network namespace, the bridge, the
# iptables chains (KUBE-*, CNI-*, GATEKILN-*), the cgroups, the host paths the
# components created, and the sysctls they changed. Safe to run at any time,
# also when nothing is up. Exits non-zero if something could not be removed.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

[[ $(id -u) == 0 ]] || die "cluster-down needs root"
cluster_lock
T0=$SECONDS
step() { [[ -n ${VERBOSE:-} ]] && log "down: $* (+$((SECONDS - T0))s)"; return 0; }

any_alive() {
  local p
  for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done
  return 1
}
# stop SECONDS NAME…: SIGTERM the recorded processes together, SIGKILL those
# still running after SECONDS.
stop() {
  local secs=$1 name pid pids=() i
  shift
  for name in "$@"; do
    [[ -s $PIDS/$name.pid ]] || continue
    pid=$(cat "$PIDS/$name.pid")
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    rm -f "$PIDS/$name.pid"
  done
  for ((i = 0; i < secs * 10; i++)); do
    any_alive "${pids[@]}" || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null && { log "pid $pid did not stop: SIGKILL"; kill -KILL "$pid" 2>/dev/null; }
  done
  return 0
}

# Processes of this cluster that no PID file names: anything whose command
# line names the state directory (shims, a component of a lost run).
stray_pids() {
  # (The pattern does not match grep's own command line: there a ")" or "|"
  # follows each path, never a "/".)
  grep -lsaE "($CL|$RUNDIR)/" /proc/[0-9]*/cmdline | cut -d/ -f3 | grep -vxE "$$|$BASHPID" || true
}
# Container processes: anything in a kubepods cgroup.
pod_pids() {
  cat /sys/fs/cgroup/*/kubepods*/cgroup.procs /sys/fs/cgroup/*/kubepods*/*/cgroup.procs \
    /sys/fs/cgroup/*/kubepods*/*/*/cgroup.procs /sys/fs/cgroup/*/kubepods*/*/*/*/cgroup.procs 2>/dev/null | sort -u
}

# 1. Nothing may recreate Pods, then the node stops.
stop 20 kube-controller-manager kube-scheduler kubelet cluster-dns
step kubelet stopped
# 2. Every sandbox goes through CRI, so CNI DEL frees IPs, veths and hostports.
if pid_alive containerd && [[ -S $CONTAINERD_SOCK ]]; then
  timeout 90 "$K8S_BIN/cri-cleanup" -endpoint "$CRI_ENDPOINT" -timeout 80s || log "warning: cri-cleanup failed"
fi
step sandboxes removed
stop 15 kube-proxy containerd
for pid in $(pod_pids); do kill -KILL "$pid" 2>/dev/null; done
step containerd stopped
# The apiserver drains for a while after SIGTERM; nothing it holds is kept.
stop 5 registry kube-apiserver
stop 10 etcd
for sig in TERM KILL; do
  pids=$(stray_pids)
  [[ -z $pids ]] && break
  log "stopping stray processes ($sig): $(echo $pids)"
  kill -$sig $pids 2>/dev/null
  sleep 1
done
for pid in $(pod_pids); do kill -KILL "$pid" 2>/dev/null; done

step processes stopped
# 3. Mounts: under the state directory, and containerd's network namespaces.
ours_mounts() {
  awk '{print $5}' /proc/self/mountinfo | grep -E "^($CL/|$RUNDIR/|/run/netns/cni-|/var/run/netns/cni-)" | sort -r -u
}
for attempt in 1 2 3; do
  m=$(ours_mounts)
  [[ -z $m ]] && break
  for mp in $m; do umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null; done
done

# 4. Network: veths left on the bridge, the bridge (its routes go with it).
for v in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
  ip link del "$v" 2>/dev/null
done
ip link del "$BRIDGE" 2>/dev/null
rm -f /run/netns/cni-* /var/run/netns/cni-* 2>/dev/null

step network removed
# 5. iptables: drop every chain and rule named KUBE-*, CNI-* or GATEKILN-*
#    from each table, leaving everything else as it is.
clean_tables() {
  local save=$1 restore=$2 t dump
  command -v "$save" >/dev/null || return 0
  for t in filter nat mangle raw; do
    dump=$("$save" -t "$t" 2>/dev/null) || continue
    grep -qE 'KUBE-|CNI-|GATEKILN-' <<<"$dump" || continue
    grep -vE '^:(KUBE-|CNI-|GATEKILN-)|^-A .*(KUBE-|CNI-|GATEKILN-)' <<<"$dump" | "$restore" -w -T "$t" \
      || log "warning: $restore of table $t failed"
  done
}
[[ -x $K8S_BIN/kube-proxy ]] && "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1
clean_tables iptables-save iptables-restore
clean_tables ip6tables-save ip6tables-restore
if command -v nft >/dev/null; then
  for t in "ip kube-proxy" "ip6 kube-proxy"; do nft delete table $t 2>/dev/null; done
fi

step iptables cleaned
# 6. cgroups the kubelet and runc created (deepest first).
for c in /sys/fs/cgroup/*/; do
  for d in "$c"kubepods*; do
    [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
done
if [[ -s $HOSTSTATE/cgroups ]]; then
  for d in $(ls -d /sys/fs/cgroup/*/*/ 2>/dev/null | grep -vxFf "$HOSTSTATE/cgroups"); do
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
fi

# 7. sysctls and host paths, from what up.sh recorded.
if [[ -f $HOSTSTATE/recorded ]]; then
  while IFS='=' read -r key val; do
    [[ -z $key ]] && continue
    cur=$(sysctl -n "$key" 2>/dev/null | tr '\t' ' ') || continue
    [[ $cur == "$(tr '\t' ' ' <<<"$val")" ]] || sysctl -qw "$key=$val" 2>/dev/null || log "warning: could not restore $key=$val"
  done <"$HOSTSTATE/sysctl"
  for p in "${HOST_PATHS[@]}"; do
    if [[ -e $p || -L $p ]] && ! grep -qxF "$p" "$HOSTSTATE/paths"; then
      rm -rf --one-file-system "$p"
    fi
  done
fi

# 8. What is left of the state directory (logs are kept for a post-mortem).
rm -rf --one-file-system "$RUNDIR"
if [[ -d $CL ]]; then
  find "$CL" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf --one-file-system {} + 2>/dev/null
fi

step host restored
# 9. Verify.
left=()
[[ -n $(stray_pids) ]] && left+=("processes: $(echo $(stray_pids))")
[[ -n $(pod_pids) ]] && left+=("container processes: $(echo $(pod_pids))")
[[ -n $(ours_mounts) ]] && left+=("mounts: $(echo $(ours_mounts))")
ip link show "$BRIDGE" >/dev/null 2>&1 && left+=("bridge $BRIDGE")
for s in iptables-save ip6tables-save; do
  command -v $s >/dev/null && $s 2>/dev/null | grep -qE '^:(KUBE-|CNI-|GATEKILN-)' && left+=("$s chains")
done
ls -d /sys/fs/cgroup/*/kubepods* >/dev/null 2>&1 && left+=("kubepods cgroups")
if ((${#left[@]})); then
  log "cluster-down: left behind: ${left[*]}"
  exit 1
fi
rm -rf "$HOSTSTATE"
log "cluster down in $((SECONDS - T0))s; machine restored"
