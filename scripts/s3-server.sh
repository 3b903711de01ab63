#!/usr/bin/env bash
# A disposable S3 server for deltaglider's integration tests: a one-node Ceph cluster
# (one monitor, one OSD keeping its objects in RAM, and the RADOS Gateway serving S3),
# started from Debian's packages and reachable on 127.0.0.1 only.
#
# Usage: scripts/s3-server.sh start|env|stop|status
#   start   install the Debian packages if missing, start a fresh cluster (or reuse the
#           one already running), and print `export ...` lines on stdout:
#               eval "$(scripts/s3-server.sh start)"
#   env     print the same `export ...` lines again
#   stop    stop the daemons by the PIDs in their pid files and wait until they are gone
#   status  say on stderr whether it runs; exit 0 if it does, 1 if not
# Only the export lines go to stdout; every message goes to stderr.
#
# Settings (environment):
#   DG_S3_PORT      S3 port on 127.0.0.1                  (default 7480)
#   DG_S3_MON_PORT  Ceph monitor port on 127.0.0.1 (msgr2) (default DG_S3_PORT + 1, not
#                   Ceph's usual 3300, so that another Ceph on this machine does not clash)
#   DG_S3_DIR       state, pid files and logs             (default ${TMPDIR:-/tmp}/deltaglider-s3)
#   DG_S3_MEM_BYTES capacity of the in-memory OSD         (default 8 GiB; RAM is used on demand)
#   DG_S3_ACCESS_KEY / DG_S3_SECRET_KEY / DG_S3_REGION    test credentials and region
# The OSDs pick their own ports from Ceph's 6800-7300 range, also on 127.0.0.1.
#
# Every `start` of a stopped server wipes DG_S3_DIR: the objects live only as long as the
# daemons do. Stale pid files and directories left by a crashed run are cleaned up; a
# process is only signalled if its command line names this server's ceph.conf.
#
# Measured on the 2-core Debian 12 development machine (Ceph 16.2.15, November 2026):
#   install: apt-get update 1-3 s + apt-get install radosgw ceph-mon ceph-osd 9 s (~60
#            packages, ~12 s in all; skipped when the commands are already there)
#   start:   2-3 s from nothing to an authenticated S3 request answered (the fast monitor
#            commits below matter: with Ceph's defaults the gateway's first start takes ~14 s)
#   stop:    2.5-3 s (SIGTERM, then SIGKILL for whatever is still there after 2 s)
#   start when already running: ~0.1 s
#
# Quirks of Ceph 16's gateway that clients must live with:
#   * Uploads sent as aws-chunked with trailing checksums (the default of recent AWS SDKs)
#     are rejected, so the env lines ask SDKs to compute checksums only when an operation
#     requires them (AWS_REQUEST_CHECKSUM_CALCULATION / AWS_RESPONSE_CHECKSUM_VALIDATION).
#   * Use path-style addressing (http://127.0.0.1:PORT/bucket/key); virtual-host style
#     needs DNS names for buckets.
#   * If-None-Match: * is honoured (atomically) by PutObject but ignored by
#     CompleteMultipartUpload, and CompleteMultipartUpload returns an empty ETag.
#   * Without tcp_nodelay small GETs on kept-alive connections stall ~40 ms (Nagle); the
#     frontend below sets tcp_nodelay=1.
set -euo pipefail

PORT=${DG_S3_PORT:-7480}
MON_PORT=${DG_S3_MON_PORT:-$((PORT + 1))}
DIR=${DG_S3_DIR:-${TMPDIR:-/tmp}/deltaglider-s3}
MEM_BYTES=${DG_S3_MEM_BYTES:-8589934592}
ACCESS_KEY=${DG_S3_ACCESS_KEY:-DELTAGLIDERTESTKEY01}
SECRET_KEY=${DG_S3_SECRET_KEY:-deltagliderTestSecretKey0123456789abcdef}
REGION=${DG_S3_REGION:-us-east-1}
DIR=${DIR%/}
CONF=$DIR/ceph.conf
RGW_NAME=client.rgw.dg
DAEMONS=(client.rgw.dg osd.0 mon.a) # pid file names ($DIR/run/<name>.pid), in stop order
ENDPOINT=http://127.0.0.1:$PORT

# stdout is reserved for the export lines: keep it on fd 3, send everything else to stderr.
exec 3>&1 1>&2

say() { printf 's3-server: %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

envlines() {
  printf 'export %s=%q\n' \
    AWS_ENDPOINT_URL "$ENDPOINT" \
    AWS_ACCESS_KEY_ID "$ACCESS_KEY" \
    AWS_SECRET_ACCESS_KEY "$SECRET_KEY" \
    AWS_REGION "$REGION" \
    AWS_DEFAULT_REGION "$REGION" \
    AWS_REQUEST_CHECKSUM_CALCULATION when_required \
    AWS_RESPONSE_CHECKSUM_VALIDATION when_required >&3
}

# --- processes ------------------------------------------------------------------------

# pid_of NAME: the PID in NAME's pid file if that process is alive and is one of ours.
pid_of() {
  local f=$DIR/run/$1.pid pid
  [ -s "$f" ] || return 1
  pid=$(tr -dc 0-9 <"$f")
  [ -n "$pid" ] && is_ours "$pid" && echo "$pid"
}

# is_ours PID: the process runs with this server's ceph.conf on its command line.
is_ours() {
  local cmd
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
  case "$cmd" in *" $CONF "*) return 0 ;; *) return 1 ;; esac
}

# our_pids: every live process started with this server's ceph.conf, found by pid file
# first, then by a scan of /proc for daemons whose pid file was lost.
our_pids() {
  local name p
  {
    for name in "${DAEMONS[@]}"; do pid_of "$name" || true; done
    for p in /proc/[0-9]*; do
      p=${p#/proc/}
      if [ "$p" != $$ ] && is_ours "$p"; then echo "$p"; fi
    done
  } | awk '!seen[$0]++'
}

answers() { curl -s -o /dev/null --max-time 2 "$ENDPOINT/"; }

# signed_ok: an authenticated ListBuckets with the test keys succeeds.
signed_ok() {
  curl -sf -o /dev/null --max-time 5 --aws-sigv4 "aws:amz:$REGION:s3" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    --user "$ACCESS_KEY:$SECRET_KEY" "$ENDPOINT/"
}

running() {
  local name
  for name in "${DAEMONS[@]}"; do pid_of "$name" >/dev/null || return 1; done
  signed_ok
}

port_busy() { (exec 5<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# launch CMD...: start a Ceph daemon (it forks into the background itself) without
# handing it our stdout (fd 3, maybe a pipe someone waits on) or the lock (fd 9).
launch() { "$@" </dev/null >>"$DIR/log/daemons.out" 2>&1 3>&- 9>&-; }

# wait_for WHAT SECONDS CMD...: poll CMD until it succeeds.
wait_for() {
  local what=$1 secs=$2 t0
  shift 2
  t0=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    if [ $(($(date +%s) - t0)) -ge "$secs" ]; then fail "$what not ready after ${secs}s"; fi
    sleep 0.2
  done
}

ceph_cli() { timeout 60 ceph -c "$CONF" --connect-timeout 30 "$@"; }
osd_up() { ceph_cli osd stat -f json | grep -q '"num_up_osds":1'; }

fail() {
  say "ERROR: $*"
  local f
  for f in "$DIR"/log/*; do
    [ -s "$f" ] || continue
    say "--- last lines of $f"
    tail -n 15 "$f" >&2 || true
  done
  say "the server did not start; logs are in $DIR/log"
  stop_daemons
  exit 1
}

# stop_daemons: SIGTERM to every daemon of ours, SIGKILL to those still there after a grace
# period (a clean Ceph shutdown takes ~2 s per daemon and the state is thrown away anyway),
# then wait until every one is gone.
stop_daemons() {
  local pids p ticks=0 grace=${DG_S3_STOP_GRACE:-2}
  mapfile -t pids < <(our_pids)
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for p in "${pids[@]}"; do
      while kill -0 "$p" 2>/dev/null && is_ours "$p"; do
        if [ "$ticks" -ge $((grace * 20)) ]; then kill -KILL "$p" 2>/dev/null || true; fi
        sleep 0.05
        ticks=$((ticks + 1))
      done
    done
  fi
  rm -f "$DIR"/run/*.pid
  # the in-memory OSD may have written its objects to disk on the way out: of no further use
  rm -rf "$DIR/osd0"
}

# --- packages -------------------------------------------------------------------------

ensure_packages() {
  local pkgs=() sudo=
  local c
  for c in radosgw radosgw-admin ceph ceph-mon ceph-osd ceph-authtool monmaptool; do
    command -v "$c" >/dev/null 2>&1 || { pkgs+=(radosgw ceph-mon ceph-osd); break; }
  done
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  command -v flock >/dev/null 2>&1 || pkgs+=(util-linux)
  [ ${#pkgs[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  say "installing ${pkgs[*]} with apt-get"
  local t0 log=${TMPDIR:-/tmp}/deltaglider-s3-apt.log
  t0=$(now)
  # another apt/dpkg run (an unattended upgrade, a parallel job) holds its locks for a while:
  # wait for it up to 5 minutes rather than fail at once
  local wait=(-o DPkg::Lock::Timeout=300) tries=0
  : >"$log"
  until $sudo apt-get "${wait[@]}" update -qq </dev/null >>"$log" 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ] || ! tail -n 5 "$log" | grep -q 'Could not get lock'; then
      tail -n 20 "$log" >&2
      say "ERROR: apt-get update failed (log: $log)"
      exit 1
    fi
    sleep 5
  done
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get "${wait[@]}" install -y -qq \
    --no-install-recommends "${pkgs[@]}" </dev/null >>"$log" 2>&1; then
    tail -n 20 "$log" >&2
    say "ERROR: could not install ${pkgs[*]} (apt log: $log)"
    exit 1
  fi
  say "installed in $(since "$t0")s"
}

# --- start ----------------------------------------------------------------------------

write_conf() {
  cat >"$CONF" <<CONF
[global]
fsid = $1
mon_host = v2:127.0.0.1:$MON_PORT
public_network = 127.0.0.0/8
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv4 = true
ms_bind_ipv6 = false
ms_bind_msgr1 = false
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
keyring = $DIR/admin.keyring
run_dir = $DIR/run
admin_socket = $DIR/run/\$name.asok
pid_file = $DIR/run/\$name.pid
log_file = $DIR/log/\$name.log
log_to_stderr = false
err_to_stderr = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
# a nearly full /tmp must not make the monitor shut itself down
mon_data_avail_crit = 0
mon_data_avail_warn = 0

[mon.a]
mon_data = $DIR/mon
# commit cluster map changes quickly: the gateway creates its pools one by one at first start
paxos_propose_interval = 0.05
paxos_min_wait = 0.01

[osd.0]
osd_data = $DIR/osd0
osd_objectstore = memstore
memstore_device_bytes = $MEM_BYTES
keyring = $DIR/osd0/keyring

[$RGW_NAME]
keyring = $DIR/rgw/keyring
rgw_data = $DIR/rgw
rgw_frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw_dns_name = localhost
rgw_dynamic_resharding = false
CONF
}

start() {
  ensure_packages
  mkdir -p "$(dirname "$DIR")"
  exec 9>"$DIR.lock"
  flock -w 300 9 || { say "ERROR: another start/stop holds $DIR.lock"; exit 1; }

  if running; then
    say "already running at $ENDPOINT (state in $DIR)"
    envlines
    return 0
  fi

  local t0 fsid osd_uuid
  t0=$(now)
  stop_daemons # whatever is left of an earlier or crashed run
  local p
  for p in "$PORT" "$MON_PORT"; do
    if port_busy "$p"; then
      say "ERROR: 127.0.0.1:$p is already in use by another program (another S3 server?);"
      say "       stop it, or pick free ports with DG_S3_PORT / DG_S3_MON_PORT"
      exit 1
    fi
  done
  rm -rf "$DIR"
  mkdir -p "$DIR"/{mon,osd0,rgw,run,log}
  fsid=$(cat /proc/sys/kernel/random/uuid)
  write_conf "$fsid"

  ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$DIR/admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/admin.keyring" >/dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:$MON_PORT]" --fsid "$fsid" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring" \
    >>"$DIR/log/setup.out" 2>&1 || fail "ceph-mon --mkfs failed"
  launch ceph-mon -c "$CONF" -i a || fail "ceph-mon did not start"
  wait_for "the monitor" 60 ceph_cli mon stat

  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  ceph_cli osd new "$osd_uuid" >/dev/null 2>>"$DIR/log/setup.out" || fail "ceph osd new failed"
  ceph-osd -c "$CONF" -i 0 --mkfs --mkkey --osd-uuid "$osd_uuid" --no-mon-config \
    >>"$DIR/log/setup.out" 2>&1 || fail "ceph-osd --mkfs failed"
  ceph_cli auth add osd.0 osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' \
    -i "$DIR/osd0/keyring" >>"$DIR/log/setup.out" 2>&1 || fail "registering the OSD key failed"
  launch ceph-osd -c "$CONF" -i 0 || fail "ceph-osd did not start"
  wait_for "the OSD" 60 osd_up

  ceph_cli auth get-or-create "$RGW_NAME" mon 'allow rw' osd 'allow rwx' \
    -o "$DIR/rgw/keyring" >>"$DIR/log/setup.out" 2>&1 || fail "creating the gateway key failed"
  launch radosgw -c "$CONF" -n "$RGW_NAME" || fail "radosgw did not start"
  wait_for "the gateway on $ENDPOINT" 120 answers
  timeout 60 radosgw-admin -c "$CONF" user create --uid=dgtest --display-name="deltaglider tests" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >>"$DIR/log/setup.out" 2>&1 ||
    fail "creating the test user failed"
  wait_for "authenticated S3 requests" 30 signed_ok
  for p in "${DAEMONS[@]}"; do pid_of "$p" >/dev/null || fail "the $p daemon has no live pid file"; done

  say "ready at $ENDPOINT in $(since "$t0")s (state and logs in $DIR)"
  envlines
}

stop() {
  mkdir -p "$(dirname "$DIR")"
  exec 9>"$DIR.lock"
  flock -w 300 9 || { say "ERROR: another start/stop holds $DIR.lock"; exit 1; }
  local t0 n
  t0=$(now)
  n=$(our_pids | wc -l)
  stop_daemons
  if [ "$n" -gt 0 ]; then say "stopped $n daemon(s) in $(since "$t0")s"; else say "not running"; fi
}

status() {
  if running; then
    local name pids=()
    for name in "${DAEMONS[@]}"; do pids+=("$name=$(pid_of "$name")"); done
    say "running at $ENDPOINT (${pids[*]}; state in $DIR)"
    return 0
  fi
  if [ -n "$(our_pids)" ]; then
    say "not working: some daemons run but $ENDPOINT does not answer signed requests (logs in $DIR/log)"
  else
    say "stopped"
  fi
  return 1
}

case "${1:-}" in
  start) start ;;
  env) envlines ;;
  stop) stop ;;
  status) status ;;
  *)
    say "usage: $0 start|env|stop|status"
    exit 2
    ;;
esac
