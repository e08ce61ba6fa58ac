#!/usr/bin/env bash
# A throw-away Ceph cluster (1 mon, 0/1 mgr, 1-3 OSDs) on 127.0.0.1 with all state under CEPH_DIR,
# for tests and benchmarks (docs: /work/shared/reference/ceph-minicluster.md, docs/ceph.md).
#
#   scripts/ceph-cluster.sh install|start|smoke|status|stop|kill
#
# Knobs (environment):
#   CEPH_DIR        state directory (default /tmp/iscsi-gw-ceph.$UID); `start` wipes it first
#   OBJECTSTORE     memstore (default; RAM, fastest, lost on OSD restart) | bluestore (sparse file)
#   NUM_OSDS        1..3 (default 1)
#   WITH_MGR        1|0 (default 0: RBD needs no mgr; `ceph df`/`ceph -s` figures do)
#   MON_PORT_V2/V1  mon ports; default: two free ports picked at random (never 3300/6789, since
#                   several clusters share this machine)
#   WATCH_TIMEOUT   osd_client_watch_timeout in s (default 10): how long a dead client's watch
#                   and exclusive lock stall the next opener
#   POOL, PG_NUM    the RBD pool `start` creates (default rbd, 32)
#   BLUESTORE_SIZE  bytes (default 10 GiB, sparse); MEMSTORE_SIZE bytes (default 4 GiB);
#   MEMSTORE_PAGE_SET true|false (default true)
set -euo pipefail

CEPH_DIR=${CEPH_DIR:-/tmp/iscsi-gw-ceph.$(id -u)}
OBJECTSTORE=${OBJECTSTORE:-memstore}
NUM_OSDS=${NUM_OSDS:-1}
WITH_MGR=${WITH_MGR:-0}
WATCH_TIMEOUT=${WATCH_TIMEOUT:-10}
POOL=${POOL:-rbd}
PG_NUM=${PG_NUM:-32}
BLUESTORE_SIZE=${BLUESTORE_SIZE:-10737418240}
MEMSTORE_SIZE=${MEMSTORE_SIZE:-4294967296}
MEMSTORE_PAGE_SET=${MEMSTORE_PAGE_SET:-true}
CONF=$CEPH_DIR/ceph.conf
PKGS=(ceph-mon ceph-osd ceph-mgr ceph-common librbd-dev librados-dev fio uuid-runtime)

log() { printf '[ceph-cluster %s] %s\n' "$(date +%H:%M:%S.%N | cut -c1-12)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

case "$OBJECTSTORE" in memstore|bluestore) ;; *) die "OBJECTSTORE must be memstore or bluestore, not '$OBJECTSTORE'";; esac
[[ "$NUM_OSDS" =~ ^[1-3]$ ]] || die "NUM_OSDS must be 1, 2 or 3, not '$NUM_OSDS'"
[[ "$WITH_MGR" =~ ^[01]$ ]] || die "WITH_MGR must be 0 or 1, not '$WITH_MGR'"
[[ "$WATCH_TIMEOUT" =~ ^[0-9]+$ ]] || die "WATCH_TIMEOUT must be a number of seconds"

port_busy() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

# Two free TCP ports in 20000-39999, bounded tries.
pick_ports() {
  local i a
  for ((i = 0; i < 200; i++)); do
    a=$((20000 + (RANDOM % 10000) * 2))
    if ! port_busy "$a" && ! port_busy $((a + 1)); then echo "$a $((a + 1))"; return 0; fi
  done
  die "no free mon ports found"
}

# Only signal PIDs that belong to this cluster (their command line names this conf).
ours() {
  local pid=$1
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONF"
}

pids_of() { # group: osd|mgr|mon
  local f pid
  for f in "$CEPH_DIR"/run/"$1".*.pid; do
    [ -e "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    [[ "$pid" =~ ^[0-9]+$ ]] && ours "$pid" && echo "$pid"
  done
  return 0
}

stop_group() { # group signal
  local pids pid i
  pids=$(pids_of "$1")
  [ -n "$pids" ] || return 0
  for pid in $pids; do kill "-$2" "$pid" 2>/dev/null || true; done
  for ((i = 0; i < 100; i++)); do
    local alive=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for pid in $pids; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$CEPH_DIR"/run/"$1".*.pid
}

cmd_stop() {
  [ -d "$CEPH_DIR" ] || return 0
  # OSDs first, then mgr, then mon: an OSD stopped after its mon waits for a mon ack (5 s).
  stop_group osd TERM; stop_group mgr TERM; stop_group mon TERM
  log "stopped $CEPH_DIR"
}

cmd_kill() {
  [ -d "$CEPH_DIR" ] || return 0
  local pid
  for g in osd mgr mon; do for pid in $(pids_of $g); do kill -KILL "$pid" 2>/dev/null || true; done; done
  for g in osd mgr mon; do
    for pid in $(pids_of $g); do
      local i; for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    done
    rm -f "$CEPH_DIR"/run/$g.*.pid
  done
  log "killed $CEPH_DIR"
}

cmd_install() {
  local missing=() p sudo=""
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && { log "packages present"; return 0; }
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  local i
  for ((i = 0; i < 30; i++)); do
    if $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
      || { $sudo apt-get update -q && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }; then
      return 0
    fi
    log "apt busy or failed; retrying in 10 s"; sleep 10
  done
  die "could not install ${missing[*]}"
}

write_conf() {
  local fsid=$1
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$MON_PORT_V2,v1:127.0.0.1:$MON_PORT_V1]
public_network = 127.0.0.0/8
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv4 = true
ms_bind_ipv6 = false
ms_bind_port_min = 6800
ms_bind_port_max = 7300
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
auth_allow_insecure_global_id_reclaim = false
keyring = $CEPH_DIR/keyring
run_dir = $CEPH_DIR/run
pid_file = $CEPH_DIR/run/\$name.pid
log_file = $CEPH_DIR/log/\$name.log
admin_socket = $CEPH_DIR/run/\$name.asok
crash_dir = $CEPH_DIR/crash
mon_cluster_log_file = $CEPH_DIR/log/cluster.log
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
osd_crush_chooseleaf_type = 0
osd_pool_default_pg_autoscale_mode = off
osd_pool_default_pg_num = $PG_NUM
osd_pool_default_pgp_num = $PG_NUM
mon_max_pg_per_osd = 1000
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
mon_warn_on_pool_no_app = false
mon_osd_initial_require_min_compat_client = mimic

[client]
admin_socket = $CEPH_DIR/run/\$name.\$pid.asok
log_file = $CEPH_DIR/log/\$name.log

[mon]
paxos_propose_interval = 0.1
mon_data = $CEPH_DIR/mon/\$cluster-\$id
mon_data_avail_warn = 1
mon_data_avail_crit = 0

[mgr]
mgr_data = $CEPH_DIR/mgr/\$cluster-\$id
mgr_initial_modules =

[osd]
osd_data = $CEPH_DIR/osd/\$cluster-\$id
osd_objectstore = $OBJECTSTORE
osd_crush_initial_weight = 1
osd_client_watch_timeout = $WATCH_TIMEOUT
osd_crush_update_on_start = true
osd_memory_target = 1073741824
osd_memory_cache_min = 134217728
osd_op_num_shards = 2
osd_op_num_threads_per_shard = 1
memstore_device_bytes = $MEMSTORE_SIZE
memstore_page_set = $MEMSTORE_PAGE_SET
bluestore_block_create = true
bluestore_block_size = $BLUESTORE_SIZE
bluestore_cache_autotune = false
bluestore_cache_size = 134217728
bluestore_fsck_on_mount = false
bluestore_fsck_on_mkfs = false
EOF
}

cmd_start() {
  command -v ceph-mon >/dev/null || die "ceph-mon not installed (run: $0 install)"
  [[ "$CEPH_DIR" == /* && "$CEPH_DIR" != "/" ]] || die "CEPH_DIR must be an absolute path"
  if [ -z "${MON_PORT_V2:-}" ] || [ -z "${MON_PORT_V1:-}" ]; then
    read -r MON_PORT_V2 MON_PORT_V1 < <(pick_ports)
  fi
  # A cluster already in this directory is ours to replace (pitfall 14); stop it before checking ports.
  [ -f "$CONF" ] && cmd_kill
  port_busy "$MON_PORT_V2" && die "mon port $MON_PORT_V2 is busy"
  port_busy "$MON_PORT_V1" && die "mon port $MON_PORT_V1 is busy"
  rm -rf "$CEPH_DIR"
  mkdir -p "$CEPH_DIR"/{run,log,crash,mon/ceph-a,mgr/ceph-x}
  local fsid K=$CEPH_DIR/keyring i
  fsid=$(uuidgen)
  write_conf "$fsid"
  export CEPH_CONF=$CONF
  log "conf $CONF (mon ports $MON_PORT_V2/$MON_PORT_V1, $OBJECTSTORE, $NUM_OSDS osd(s), mgr=$WITH_MGR)"

  # One keyring with every key: mon --mkfs imports them all, so no `ceph auth add` later.
  ceph-authtool --create-keyring "$K" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$K" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool "$K" --gen-key -n mgr.x --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
  for ((i = 0; i < NUM_OSDS; i++)); do
    ceph-authtool "$K" --gen-key -n "osd.$i" --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
  done
  chmod 600 "$K"

  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT_V2,v1:127.0.0.1:$MON_PORT_V1]" "$CEPH_DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" --keyring "$K" 2>>"$CEPH_DIR/log/bootstrap.log"
  ceph-mon -c "$CONF" -i a >>"$CEPH_DIR/log/bootstrap.log" 2>&1 </dev/null
  log "mon up"
  [ "$WITH_MGR" = 1 ] && ceph-mgr -c "$CONF" -i x >>"$CEPH_DIR/log/bootstrap.log" 2>&1 </dev/null

  local uuids=()
  for ((i = 0; i < NUM_OSDS; i++)); do
    uuids[i]=$(uuidgen)
    mkdir -p "$CEPH_DIR/osd/ceph-$i"
    timeout 60 ceph osd new "${uuids[i]}" "$i" >/dev/null
  done
  local pids=()
  for ((i = 0; i < NUM_OSDS; i++)); do
    ( ceph-osd -c "$CONF" -i "$i" --mkfs --osd-uuid "${uuids[i]}" >>"$CEPH_DIR/log/bootstrap.log" 2>&1 \
      && ceph-osd -c "$CONF" -i "$i" >>"$CEPH_DIR/log/bootstrap.log" 2>&1 </dev/null ) &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || die "an OSD failed to start (see $CEPH_DIR/log/)"; done
  log "osd(s) started"

  timeout 60 ceph osd pool create "$POOL" "$PG_NUM" "$PG_NUM" replicated >/dev/null 2>&1 || die "pool create failed"
  # Blocks until the pool's PGs are active: the readiness barrier (HEALTH_OK comes too early).
  timeout 120 rbd pool init "$POOL" || die "rbd pool init timed out"
  log "usable"
  if [ "$WITH_MGR" = 1 ]; then
    for ((i = 0; i < 120; i++)); do
      ceph pg stat 2>/dev/null | grep -Eq '^([0-9]+) pgs: \1 active\+clean;' && break
      sleep 0.5
    done
  fi
  echo "export CEPH_CONF=$CONF"
}

cmd_status() {
  [ -f "$CONF" ] || { echo "no cluster in $CEPH_DIR"; exit 1; }
  local g pid n=0
  for g in mon mgr osd; do for pid in $(pids_of $g); do echo "$g pid $pid"; n=$((n + 1)); done; done
  [ $n -gt 0 ] || { echo "no daemon running for $CEPH_DIR"; exit 1; }
  CEPH_CONF=$CONF timeout 20 ceph -s
}

cmd_smoke() {
  export CEPH_CONF=$CONF
  local img=smoke-$$ clone=smoke-clone-$$
  set -x
  rbd create --size 64M "$POOL/$img"
  rbd info "$POOL/$img" >/dev/null
  rbd bench --io-type write --io-size 4K --io-total 4M "$POOL/$img" >/dev/null
  rbd snap create "$POOL/$img@s1"
  rbd snap protect "$POOL/$img@s1"
  rbd clone "$POOL/$img@s1" "$POOL/$clone"
  rbd children "$POOL/$img@s1" | grep -q "$clone"
  rbd resize --size 128M "$POOL/$img" --no-progress
  rbd flatten "$POOL/$clone" --no-progress
  rbd snap unprotect "$POOL/$img@s1"
  rbd rm "$POOL/$clone" --no-progress
  rbd snap purge "$POOL/$img" --no-progress
  rbd rm "$POOL/$img" --no-progress
  set +x
  echo "smoke OK"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  smoke) cmd_smoke ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  kill) cmd_kill ;;
  *) echo "usage: $0 install|start|smoke|status|stop|kill" >&2; exit 2 ;;
esac
