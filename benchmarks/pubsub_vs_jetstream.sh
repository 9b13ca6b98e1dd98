#!/usr/bin/env bash
# dlog topics (broker + log streams) vs NATS JetStream, in one invocation on
# one machine: OpenMessaging Benchmark's 1-topic-16-partitions-1kb workload.
#
#   benchmarks/pubsub_vs_jetstream.sh BUILD_DIR
#   BENCH_SECONDS=5 benchmarks/pubsub_vs_jetstream.sh build-release
#
# Starts, on loopback and under one temp dir: a throwaway ZooKeeper, three
# `dlogd logstore` nodes and one `dlogd broker` (--ensemble-size 3
# --write-quorum 3 --ack-quorum 2) registered in it, and a three-node
# nats-server cluster with JetStream (file storage). The workload: 1 topic
# with 16 partitions, 1 KiB messages, 1 producer, 1 consumer on a Failover
# subscription (every message acked):
#   dlog:      BUILD_DIR/client/dlog perf pubsub TOPIC -p 16 --sub-type failover ...
#              (a fresh topic per round; the consumer subscribes before producing)
#   jetstream: BUILD_DIR/benchmarks/jetstream_bench --subjects 16 --consumer durable ...
#              (one R3 stream with 16 subjects published round robin, async
#              publish with PubAcks, a durable push consumer with explicit acks)
# Two measurements, each ROUNDS (default 3) alternating rounds - dlog,
# jetstream, dlog, ... - of BENCH_SECONDS (default 10) after a 1 s warm-up:
#   throughput   as fast as the publish window (WINDOW messages unacknowledged) allows
#   rate_10k     RATE (default 10000) messages/s, for end-to-end latency
# Both print one `RESULT system=... workload=... records_per_s=...
# consumed_per_s=... e2e_p99_us=...` line per round (records_per_s counts the
# publishes acknowledged in the window); this script prints every one, a
# durability statement, and ends with two ratios, each the MEDIAN OVER THE
# ROUNDS OF THE PER-ROUND RATIOS (round i's dlog figure over round i's
# JetStream figure):
#   ratio_pubsub_throughput_vs_jetstream=<x>   acknowledged publishes/s, dlog / JetStream
#   ratio_pubsub_p99_e2e_vs_jetstream=<x>      rate_10k, dlog e2e p99 / JetStream e2e p99
# A ratio with no complete pair of rounds prints as n/a. (Informational, before
# them: the same median for consumed messages/s in the throughput rounds.)
#
# Environment: BENCH_SECONDS (10), ROUNDS (3), RATE (10000), WINDOW (1000),
# BENCH_WORKLOADS ("throughput rate_10k"), DLOG_PERF_ARGS / JS_BENCH_ARGS
# (extra flags for either side), KEEP_WORKDIR=1 keeps the temp dir (logs,
# data) instead of deleting it. Every process it starts is stopped on exit
# (only those, by PID).
set -euo pipefail

usage() {
  echo "usage: $0 BUILD_DIR   (env: BENCH_SECONDS=10 ROUNDS=3 RATE=10000 WINDOW=1000 KEEP_WORKDIR=0)" >&2
  exit 2
}
[ $# -eq 1 ] || usage
[ -d "$1" ] || { echo "pubsub_vs_jetstream: build dir '$1' does not exist" >&2; exit 2; }
BUILD_DIR=$(cd "$1" && pwd)
BENCH_SECONDS=${BENCH_SECONDS:-10}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-10000}
WINDOW=${WINDOW:-1000}

DLOGD=$BUILD_DIR/server/dlogd
DLOG=$BUILD_DIR/client/dlog
JSBENCH=$BUILD_DIR/benchmarks/jetstream_bench
JAVA=/usr/bin/java
ZK_CP=/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar
NATS_SERVER=$(command -v nats-server || true)

die() { echo "pubsub_vs_jetstream: $*" >&2; exit 1; }
log() { echo "pubsub_vs_jetstream: $*" >&2; }

[ -x "$DLOGD" ] || die "$DLOGD not found: cmake --build $BUILD_DIR --target dlogd"
[ -x "$JSBENCH" ] || die "$JSBENCH not found: install libnats-dev (scripts/install-deps.sh), re-run cmake, then cmake --build $BUILD_DIR --target jetstream_bench"
[ -n "$NATS_SERVER" ] || die "nats-server not installed (apt-get install nats-server, or scripts/install-deps.sh)"
{ [ -x "$JAVA" ] && [ -r /usr/share/java/zookeeper.jar ]; } || die "ZooKeeper needs $JAVA and /usr/share/java/zookeeper.jar (apt-get install zookeeper default-jre-headless)"
HAVE_DLOG=1
if [ ! -x "$DLOG" ] || ! "$DLOG" perf pubsub --help >/dev/null 2>&1; then
  HAVE_DLOG=0
  log "NOTE: $DLOG has no \`perf pubsub\` (not built): running the JetStream side only; the ratios will be n/a"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pubsub_vs_jetstream.XXXXXX")
PIDS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local pid i k
  # In reverse start order - the nats-servers, the broker (while its logstore
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
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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
zk_srvr() {
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT && printf srvr >&3 && cat <&3" 2>/dev/null
}
zk_ready() { zk_srvr | grep -q "Mode: standalone"; }
must_start "ZooKeeper on 127.0.0.1:$ZK_PORT" 60 "$ZK_PID" "$WORK/zk/zk.log" zk_ready
METADATA=zk://127.0.0.1:$ZK_PORT/dlog
log "ZooKeeper ready on 127.0.0.1:$ZK_PORT (pid $ZK_PID)"

# ---- three dlogd logstore nodes --------------------------------------------------
DLOGD_PIDS=()
for i in 1 2 3; do
  node_port=""
  free_port node_port
  d=$WORK/dlog/node$i
  mkdir -p "$d"
  "$DLOGD" logstore --data-dir "$d/data" --listen "127.0.0.1:$node_port" --metadata "$METADATA" --format \
    ${DLOGD_LOGSTORE_ARGS:-} >"$d/dlogd.log" 2>&1 &
  PIDS+=("$!")
  DLOGD_PIDS+=("$!")
done
for i in 1 2 3; do
  pid=${DLOGD_PIDS[$((i - 1))]}
  f=$WORK/dlog/node$i/dlogd.log
  must_start "dlogd node $i" 30 "$pid" "$f" grep -qs "dlogd logstore ready" "$f"
  log "$(grep -m1 "dlogd logstore ready" "$f")"
done

# ---- one dlogd broker (E=3, Qw=3, Qa=2) ------------------------------------------
BROKER_PORT=""
free_port BROKER_PORT
mkdir -p "$WORK/dlog/broker"
"$DLOGD" broker --metadata "$METADATA" --listen "127.0.0.1:$BROKER_PORT" --data-dir "$WORK/dlog/broker/data" \
  --ensemble-size 3 --write-quorum 3 --ack-quorum 2 ${DLOGD_BROKER_ARGS:-} >"$WORK/dlog/broker/dlogd.log" 2>&1 &
BROKER_PID=$!
PIDS+=("$BROKER_PID")
must_start "dlogd broker" 30 "$BROKER_PID" "$WORK/dlog/broker/dlogd.log" grep -qs "dlogd broker ready" "$WORK/dlog/broker/dlogd.log"
log "$(grep -m1 "dlogd broker ready" "$WORK/dlog/broker/dlogd.log")"
SERVICE_URL=dlog://127.0.0.1:$BROKER_PORT

# ---- three nats-server nodes, JetStream on, file storage ----------------------
NATS_START=$(date +%s.%N)
NATS_PIDS=()
NATS_URLS=""
ROUTES=""
declare -a NC NR NM
for i in 1 2 3; do
  free_port 'NC[i]'
  free_port 'NR[i]'
  free_port 'NM[i]'
  ROUTES="$ROUTES${ROUTES:+, }\"nats-route://127.0.0.1:${NR[$i]}\""
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
  routes: [ $ROUTES ]
}
EOF
  "$NATS_SERVER" -c "$d/nats.conf" >"$d/nats.log" 2>&1 &
  PIDS+=("$!")
  NATS_PIDS+=("$!")
done
nats_listening() { port_busy "$1"; }
for i in 1 2 3; do
  pid=${NATS_PIDS[$((i - 1))]}
  must_start "nats-server js$i" 30 "$pid" "$WORK/nats/js$i/nats.log" nats_listening "${NC[$i]}"
done
# The JetStream meta group needs a leader before a stream can be created.
# jetstream_bench retries stream creation for 30 s anyway; this wait (via the
# monitoring port's /jsz) only tells how long cluster formation took.
meta_leader() {
  curl -fsS "http://127.0.0.1:${NM[1]}/jsz" 2>/dev/null | tr -d ' \n' | grep -o '"meta_cluster":{[^}]*"leader":"[^"]\+"' >/dev/null
}
if command -v curl >/dev/null 2>&1; then
  if wait_for "a JetStream meta leader" 60 "${NATS_PIDS[0]}" meta_leader; then
    log "nats-server cluster with a JetStream meta leader after $(awk -v a="$NATS_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s: $NATS_URLS"
  else
    log "no JetStream meta leader reported on /jsz yet; jetstream_bench will retry"
  fi
fi
for i in 1 2 3; do alive_or_die "nats-server js$i" "${NATS_PIDS[$((i - 1))]}" "$WORK/nats/js$i/nats.log"; done

check_servers() {
  local i
  alive_or_die ZooKeeper "$ZK_PID" "$WORK/zk/zk.log"
  alive_or_die "dlogd broker" "$BROKER_PID" "$WORK/dlog/broker/dlogd.log"
  for i in 1 2 3; do
    alive_or_die "dlogd node $i" "${DLOGD_PIDS[$((i - 1))]}" "$WORK/dlog/node$i/dlogd.log"
    alive_or_die "nats-server js$i" "${NATS_PIDS[$((i - 1))]}" "$WORK/nats/js$i/nats.log"
  done
}

# ---- rounds -----------------------------------------------------------------
RESULTS=$WORK/results.txt   # lines: <workload tag> <round> <RESULT line>
: >"$RESULTS"

# run_one SYSTEM TAG ROUND MODE
run_one() {
  local sys=$1 tag=$2 round=$3 mode=$4 out err rc line
  local -a dextra=() jextra=()
  if [ "$mode" = rate ]; then
    dextra=(--rate "$RATE")
    jextra=(--rate "$RATE")
  else
    dextra=(--rate 0)
  fi
  out=$WORK/run.$tag.$round.$sys.out
  err=$WORK/run.$tag.$round.$sys.err
  check_servers
  rc=0
  if [ "$sys" = dlog ]; then
    # A fresh topic per round (16 partitions; created by perf): no backlog, no earlier ledgers.
    "$DLOG" perf pubsub "public/bench/omb-$tag-$round" --service-url "$SERVICE_URL" --partitions 16 \
      --size 1024 --producers 1 --consumers 1 --sub-type failover --subscription omb "${dextra[@]}" \
      --max-pending "$WINDOW" --duration "$BENCH_SECONDS" --warmup 1 --result ${DLOG_PERF_ARGS:-} \
      >"$out" 2>"$err" || rc=$?
  else
    "$JSBENCH" --servers "$NATS_URLS" --replicas 3 --subjects 16 --consumer durable --mode "$mode" \
      "${jextra[@]}" --size 1024 --window "$WINDOW" --seconds "$BENCH_SECONDS" --warmup 1 --setup-timeout 30 \
      ${JS_BENCH_ARGS:-} >"$out" 2>"$err" || rc=$?
  fi
  line=$(grep -m1 "^RESULT system=$sys " "$out" || true)
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    log "$sys round $round ($tag) FAILED (exit $rc); its stderr:"
    tail -n 15 "$err" >&2 || true
    return 0
  fi
  grep -h "warning" "$err" >&2 || true
  echo "$line"
  echo "$tag $round $line" >>"$RESULTS"
}

WORKLOADS=("throughput throughput" "rate_10k rate")
if [ -n "${BENCH_WORKLOADS:-}" ]; then  # e.g. BENCH_WORKLOADS=rate_10k: only those tags
  sel=()
  for w in "${WORKLOADS[@]}"; do [[ " $BENCH_WORKLOADS " == *" ${w%% *} "* ]] && sel+=("$w"); done
  WORKLOADS=("${sel[@]}")
fi
log "running ${#WORKLOADS[@]} workloads x $ROUNDS rounds x ${BENCH_SECONDS}s (dlog then jetstream each round)"
for w in "${WORKLOADS[@]}"; do
  read -r tag mode <<<"$w"
  for round in $(seq 1 "$ROUNDS"); do
    if [ "$HAVE_DLOG" = 1 ]; then run_one dlog "$tag" "$round" "$mode"; fi
    run_one jetstream "$tag" "$round" "$mode"
  done
done

# ---- durability and ratios ----------------------------------------------------
cat <<'EOF'
durability: dlog acknowledges a publish once its batch is in an entry that Qa=2 of its Qw=3 logstore nodes have fdatasync'ed (journal group commit) and every earlier entry of the partition is acknowledged; consumer acks are kept in the broker's cursor store.
durability: nats-server 2.9.10 JetStream (R3, file storage) acknowledges a message once the stream's raft group has committed it (stored on 2 of 3 replicas), but its file store does not fsync per message: writes go to the OS page cache and a background timer fsyncs them (2.9 file store default: every 60 s; 2.9.10 has no option to change it and rejects `sync_interval` as an unknown field - later releases add `sync_interval`, default 2 min, or "always"). A JetStream acknowledgement survives a process crash, not a power loss or kernel crash of 2 of 3 nodes within that interval; a dlog acknowledgement survives both.
EOF

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

echo "info: consumed messages/s in the throughput rounds, dlog / JetStream (median of the rounds): $(ratio throughput consumed_per_s)"
echo "ratio_pubsub_throughput_vs_jetstream=$(ratio throughput records_per_s)"
echo "ratio_pubsub_p99_e2e_vs_jetstream=$(ratio rate_10k e2e_p99_us)"
