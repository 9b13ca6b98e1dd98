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

BENCH_NAME=pubsub_vs_jetstream
# shellcheck source=benchmarks/lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"
bench_init 10000 "$@"

DLOG=$BUILD_DIR/client/dlog
HAVE_DLOG=1
if [ ! -x "$DLOG" ] || ! "$DLOG" perf pubsub --help >/dev/null 2>&1; then
  HAVE_DLOG=0
  log "NOTE: $DLOG has no \`perf pubsub\` (not built): running the JetStream side only; the ratios will be n/a"
fi

bench_workdir
start_zookeeper
start_logstore_nodes ${DLOGD_LOGSTORE_ARGS:-}

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

start_nats_cluster

check_servers() {
  check_cluster
  alive_or_die "dlogd broker" "$BROKER_PID" "$WORK/dlog/broker/dlogd.log"
}

# run_one SYSTEM ROUND TAG MODE
run_one() {
  local sys=$1 round=$2 tag=$3 mode=$4
  local -a dextra=() jextra=()
  if [ "$mode" = rate ]; then
    dextra=(--rate "$RATE")
    jextra=(--rate "$RATE")
  else
    dextra=(--rate 0)
  fi
  if [ "$sys" = dlog ]; then
    # A fresh topic per round (16 partitions; created by perf): no backlog, no earlier ledgers.
    run_round "$sys" "$tag" "$round" \
      "$DLOG" perf pubsub "public/bench/omb-$tag-$round" --service-url "$SERVICE_URL" --partitions 16 \
      --size 1024 --producers 1 --consumers 1 --sub-type failover --subscription omb "${dextra[@]}" \
      --max-pending "$WINDOW" --duration "$BENCH_SECONDS" --warmup 1 --result ${DLOG_PERF_ARGS:-}
  else
    run_round "$sys" "$tag" "$round" \
      "$JSBENCH" --servers "$NATS_URLS" --replicas 3 --subjects 16 --consumer durable --mode "$mode" \
      "${jextra[@]}" --size 1024 --window "$WINDOW" --seconds "$BENCH_SECONDS" --warmup 1 --setup-timeout 30 \
      ${JS_BENCH_ARGS:-}
  fi
}

SHOW_WARNINGS=1
# BENCH_WORKLOADS=rate_10k (for example): only those tags
run_workloads "throughput throughput" "rate_10k rate"

echo "durability: dlog acknowledges a publish once its batch is in an entry that Qa=2 of its Qw=3 logstore nodes have fdatasync'ed (journal group commit) and every earlier entry of the partition is acknowledged; consumer acks are kept in the broker's cursor store."
print_jetstream_durability

echo "info: consumed messages/s in the throughput rounds, dlog / JetStream (median of the rounds): $(ratio throughput consumed_per_s)"
echo "ratio_pubsub_throughput_vs_jetstream=$(ratio throughput records_per_s)"
echo "ratio_pubsub_p99_e2e_vs_jetstream=$(ratio rate_10k e2e_p99_us)"
