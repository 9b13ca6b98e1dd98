# Shared by benchmarks/log_vs_jetstream.sh and benchmarks/pubsub_vs_jetstream.sh
# (sourced, not run): argument and prerequisite checks, a temp dir and the
# cleanup of every process started (only those, by PID, in reverse start
# order), free loopback ports, a throwaway ZooKeeper, three `dlogd logstore`
# nodes, a three-node nats-server cluster with JetStream, the alternating
# rounds and the median of the per-round ratios.
#
# The sourcing script sets BENCH_NAME (the prefix of its messages) first.
# Globals it may use afterwards: BUILD_DIR BENCH_SECONDS ROUNDS RATE WINDOW
# DLOGD JSBENCH WORK PIDS METADATA ZK_PID DLOGD_PIDS NATS_PIDS NATS_URLS RESULTS.

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
log() { echo "$BENCH_NAME: $*" >&2; }

# bench_init DEFAULT_RATE "$@": BUILD_DIR from the arguments, the env knobs
# BENCH_SECONDS (10), ROUNDS (3), RATE (DEFAULT_RATE), WINDOW (1000), and the
# binaries the JetStream side and the cluster need (dies if one is missing).
bench_init() {
  local default_rate=$1
  shift
  if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR   (env: BENCH_SECONDS=10 ROUNDS=3 RATE=$default_rate WINDOW=1000 KEEP_WORKDIR=0)" >&2
    exit 2
  fi
  [ -d "$1" ] || { echo "$BENCH_NAME: build dir '$1' does not exist" >&2; exit 2; }
  BUILD_DIR=$(cd "$1" && pwd)
  BENCH_SECONDS=${BENCH_SECONDS:-10}
  ROUNDS=${ROUNDS:-3}
  RATE=${RATE:-$default_rate}
  WINDOW=${WINDOW:-1000}

  DLOGD=$BUILD_DIR/server/dlogd
  JSBENCH=$BUILD_DIR/benchmarks/jetstream_bench
  JAVA=/usr/bin/java
  ZK_CP=/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar
  NATS_SERVER=$(command -v nats-server || true)

  [ -x "$DLOGD" ] || die "$DLOGD not found: cmake --build $BUILD_DIR --target dlogd"
  [ -x "$JSBENCH" ] || die "$JSBENCH not found: install libnats-dev (scripts/install-deps.sh), re-run cmake, then cmake --build $BUILD_DIR --target jetstream_bench"
  [ -n "$NATS_SERVER" ] || die "nats-server not installed (apt-get install nats-server, or scripts/install-deps.sh)"
  { [ -x "$JAVA" ] && [ -r /usr/share/java/zookeeper.jar ]; } || die "ZooKeeper needs $JAVA and /usr/share/java/zookeeper.jar (apt-get install zookeeper default-jre-headless)"
}

# bench_workdir: WORK (a fresh temp dir) and PIDS; on exit every process in
# PIDS is stopped and WORK removed (kept with KEEP_WORKDIR=1).
bench_workdir() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH_NAME.XXXXXX")
  PIDS=()
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local pid i k
  # In reverse start order - the nats-servers, a broker (while its logstore
  # nodes and ZooKeeper still answer), the nodes, ZooKeeper - each within 10 s.
  for ((k = ${#PIDS[@]} - 1; k >= 0; k--)); do
    pid=${PIDS[$k]}
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP_WORKDIR:-0}" = 1 ]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}

# ---- free loopback ports ----------------------------------------------------
TAKEN=" "
port_busy() {
  if command -v ss >/dev/null 2>&1; then
    ss -Htln "sport = :$1" 2>/dev/null | grep -q . && return 0
    return 1
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
# free_port VAR: sets VAR to a loopback port nobody listens on and this script
# has not handed out yet (not in a $(...) subshell: TAKEN must persist).
free_port() {
  local _fp_port _fp_try
  for _fp_try in $(seq 1 1000); do
    _fp_port=$((20000 + RANDOM % 40000))
    case "$TAKEN" in *" $_fp_port "*) continue ;; esac
    if ! port_busy "$_fp_port"; then
      TAKEN="$TAKEN$_fp_port "
      printf -v "$1" "%s" "$_fp_port"
      return 0
    fi
  done
  die "no free port found"
}

# wait_for DESCRIPTION TIMEOUT_S PID COMMAND...: polls COMMAND every 0.1 s
wait_for() {
  local what=$1 timeout=$2 pid=$3 i
  shift 3
  for i in $(seq 1 $((timeout * 10))); do
    if "$@"; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  log "timed out after ${timeout}s waiting for $what"
  return 1
}
alive_or_die() {  # NAME PID LOGFILE
  kill -0 "$2" 2>/dev/null && return 0
  log "$1 (pid $2) is not running; last lines of $3:"
  tail -n 20 "$3" >&2 || true
  exit 1
}
# must_start NAME TIMEOUT_S PID LOGFILE COMMAND...: wait_for COMMAND or die showing the log
must_start() {
  local name=$1 timeout=$2 pid=$3 logf=$4
  shift 4
  wait_for "$name" "$timeout" "$pid" "$@" && kill -0 "$pid" 2>/dev/null && return 0
  log "$name did not come up; last lines of $logf:"
  tail -n 20 "$logf" >&2 || true
  exit 1
}

# ---- ZooKeeper ----------------------------------------------------------------
zk_srvr() {
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT && printf srvr >&3 && cat <&3" 2>/dev/null
}
zk_ready() { zk_srvr | grep -q "Mode: standalone"; }

# start_zookeeper: a standalone ZooKeeper under WORK/zk; sets ZK_PORT, ZK_PID, METADATA.
start_zookeeper() {
  ZK_PORT=""
  free_port ZK_PORT
  mkdir -p "$WORK/zk/data"
  cat >"$WORK/zk/zoo.cfg" <<EOF
tickTime=200
initLimit=10
syncLimit=5
dataDir=$WORK/zk/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok,mntr,stat
EOF
  "$JAVA" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.net.preferIPv4Stack=true \
    -Dzookeeper.admin.enableServer=false -cp "$ZK_CP" org.apache.zookeeper.server.ZooKeeperServerMain \
    "$WORK/zk/zoo.cfg" >"$WORK/zk/zk.out" 2>"$WORK/zk/zk.log" &
  ZK_PID=$!
  PIDS+=("$ZK_PID")
  must_start "ZooKeeper on 127.0.0.1:$ZK_PORT" 60 "$ZK_PID" "$WORK/zk/zk.log" zk_ready
  METADATA=zk://127.0.0.1:$ZK_PORT/dlog
  log "ZooKeeper ready on 127.0.0.1:$ZK_PORT (pid $ZK_PID)"
}

# start_logstore_nodes [EXTRA_ARG...]: three `dlogd logstore` nodes under
# WORK/dlog/node1..3, registered in METADATA; sets DLOGD_PIDS.
start_logstore_nodes() {
  local i node_port d pid f
  DLOGD_PIDS=()
  for i in 1 2 3; do
    node_port=""
    free_port node_port
    d=$WORK/dlog/node$i
    mkdir -p "$d"
    "$DLOGD" logstore --data-dir "$d/data" --listen "127.0.0.1:$node_port" --metadata "$METADATA" --format \
      "$@" >"$d/dlogd.log" 2>&1 &
    PIDS+=("$!")
    DLOGD_PIDS+=("$!")
  done
  for i in 1 2 3; do
    pid=${DLOGD_PIDS[$((i - 1))]}
    f=$WORK/dlog/node$i/dlogd.log
    must_start "dlogd node $i" 30 "$pid" "$f" grep -qs "dlogd logstore ready" "$f"
    log "$(grep -m1 "dlogd logstore ready" "$f")"
  done
}

# ---- three nats-server nodes, JetStream on, file storage ----------------------
nats_listening() { port_busy "$1"; }
# The JetStream meta group needs a leader before a stream can be created.
# jetstream_bench retries stream creation for 30 s anyway; this wait (via the
# monitoring port's /jsz) only tells how long cluster formation took.
meta_leader() {
  curl -fsS "http://127.0.0.1:${NM[1]}/jsz" 2>/dev/null | tr -d ' \n' | grep -o '"meta_cluster":{[^}]*"leader":"[^"]\+"' >/dev/null
}

# start_nats_cluster: nats-servers js1..3 under WORK/nats; sets NATS_PIDS and
# NATS_URLS (client URLs, comma-separated).
start_nats_cluster() {
  local i d pid routes="" start
  start=$(date +%s.%N)
  NATS_PIDS=()
  NATS_URLS=""
  NC=() NR=() NM=()
  for i in 1 2 3; do
    free_port 'NC[i]'
    free_port 'NR[i]'
    free_port 'NM[i]'
    routes="$routes${routes:+, }\"nats-route://127.0.0.1:${NR[$i]}\""
    NATS_URLS="$NATS_URLS${NATS_URLS:+,}nats://127.0.0.1:${NC[$i]}"
  done
  for i in 1 2 3; do
    d=$WORK/nats/js$i
    mkdir -p "$d/store"
    cat >"$d/nats.conf" <<EOF
server_name: "js$i"
listen: "127.0.0.1:${NC[$i]}"
http: "127.0.0.1:${NM[$i]}"
jetstream {
  store_dir: "$d/store"
}
cluster {
  name: "dlogbench"
  listen: "127.0.0.1:${NR[$i]}"
  routes: [ $routes ]
}
EOF
    "$NATS_SERVER" -c "$d/nats.conf" >"$d/nats.log" 2>&1 &
    PIDS+=("$!")
    NATS_PIDS+=("$!")
  done
  for i in 1 2 3; do
    pid=${NATS_PIDS[$((i - 1))]}
    must_start "nats-server js$i" 30 "$pid" "$WORK/nats/js$i/nats.log" nats_listening "${NC[$i]}"
  done
  if command -v curl >/dev/null 2>&1; then
    if wait_for "a JetStream meta leader" 60 "${NATS_PIDS[0]}" meta_leader; then
      log "nats-server cluster with a JetStream meta leader after $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s: $NATS_URLS"
    else
      log "no JetStream meta leader reported on /jsz yet; jetstream_bench will retry"
    fi
  fi
  for i in 1 2 3; do alive_or_die "nats-server js$i" "${NATS_PIDS[$((i - 1))]}" "$WORK/nats/js$i/nats.log"; done
}

# check_cluster: dies (showing its log) if ZooKeeper, a logstore node or a nats-server is gone.
check_cluster() {
  local i
  alive_or_die ZooKeeper "$ZK_PID" "$WORK/zk/zk.log"
  for i in 1 2 3; do
    alive_or_die "dlogd node $i" "${DLOGD_PIDS[$((i - 1))]}" "$WORK/dlog/node$i/dlogd.log"
    alive_or_die "nats-server js$i" "${NATS_PIDS[$((i - 1))]}" "$WORK/nats/js$i/nats.log"
  done
}

# ---- rounds -----------------------------------------------------------------
# run_round SYSTEM TAG ROUND COMMAND...: checks the servers (the caller's
# check_servers), runs COMMAND with its output in WORK, prints its
# `RESULT system=SYSTEM ...` line and adds it to RESULTS; a failed run is
# logged with its stderr and skipped. With SHOW_WARNINGS=1 the run's
# stderr lines naming a warning are shown too.
run_round() {
  local sys=$1 tag=$2 round=$3 out err rc=0 line
  shift 3
  out=$WORK/run.$tag.$round.$sys.out
  err=$WORK/run.$tag.$round.$sys.err
  check_servers
  "$@" >"$out" 2>"$err" || rc=$?
  line=$(grep -m1 "^RESULT system=$sys " "$out" || true)
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    log "$sys round $round ($tag) FAILED (exit $rc); its stderr:"
    tail -n 15 "$err" >&2 || true
    return 0
  fi
  if [ "${SHOW_WARNINGS:-0}" = 1 ]; then grep -h "warning" "$err" >&2 || true; fi
  echo "$line"
  echo "$tag $round $line" >>"$RESULTS"
}

# run_workloads WORKLOAD...: each WORKLOAD is "TAG MODE [ARG...]"; the ones
# BENCH_WORKLOADS names (all if unset) run ROUNDS alternating rounds:
# `run_one dlog ROUND TAG MODE [ARG...]` (if HAVE_DLOG=1), then the same with jetstream.
run_workloads() {
  local -a workloads=("$@") sel=()
  local w round
  RESULTS=$WORK/results.txt   # lines: <workload tag> <round> <RESULT line>
  : >"$RESULTS"
  if [ -n "${BENCH_WORKLOADS:-}" ]; then  # only those tags
    for w in "${workloads[@]}"; do [[ " $BENCH_WORKLOADS " == *" ${w%% *} "* ]] && sel+=("$w"); done
    workloads=("${sel[@]}")
  fi
  log "running ${#workloads[@]} workloads x $ROUNDS rounds x ${BENCH_SECONDS}s (dlog then jetstream each round)"
  for w in "${workloads[@]}"; do
    for round in $(seq 1 "$ROUNDS"); do
      # shellcheck disable=SC2086  # w is "TAG MODE [ARG...]"
      if [ "$HAVE_DLOG" = 1 ]; then run_one dlog "$round" $w; fi
      # shellcheck disable=SC2086
      run_one jetstream "$round" $w
    done
  done
}

# ---- durability and ratios ----------------------------------------------------
print_jetstream_durability() {
  cat <<'EOF'
durability: nats-server 2.9.10 JetStream (R3, file storage) acknowledges a message once the stream's raft group has committed it (stored on 2 of 3 replicas), but its file store does not fsync per message: writes go to the OS page cache and a background timer fsyncs them (2.9 file store default: every 60 s; 2.9.10 has no option to change it and rejects `sync_interval` as an unknown field - later releases add `sync_interval`, default 2 min, or "always"). A JetStream acknowledgement survives a process crash, not a power loss or kernel crash of 2 of 3 nodes within that interval; a dlog acknowledgement survives both.
EOF
}

# field LINE KEY -> value of KEY=value in a RESULT line
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2; exit }'; }

# ratio TAG KEY: median over rounds of (dlog KEY / jetstream KEY); n/a if no pair
ratio() {
  local tag=$1 key=$2 round d j vals=""
  for round in $(seq 1 "$ROUNDS"); do
    d=$(awk -v t="$tag" -v r="$round" '$1 == t && $2 == r && $3 == "RESULT" && $4 == "system=dlog"' "$RESULTS")
    j=$(awk -v t="$tag" -v r="$round" '$1 == t && $2 == r && $3 == "RESULT" && $4 == "system=jetstream"' "$RESULTS")
    if [ -z "$d" ] || [ -z "$j" ]; then continue; fi
    vals="$vals $(field "$d" "$key") $(field "$j" "$key")"
  done
  awk -v v="$vals" 'BEGIN {
    n = split(v, a, " "); m = 0
    for (i = 1; i + 1 <= n; i += 2) if (a[i + 1] + 0 > 0) r[++m] = a[i] / a[i + 1]
    if (m == 0) { print "n/a"; exit }
    for (i = 2; i <= m; i++) { x = r[i]; for (k = i - 1; k >= 1 && r[k] > x; k--) r[k + 1] = r[k]; r[k + 1] = x }
    med = (m % 2) ? r[(m + 1) / 2] : (r[m / 2] + r[m / 2 + 1]) / 2
    printf "%.3f\n", med
  }'
}
