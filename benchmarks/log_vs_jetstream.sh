#!/usr/bin/env bash
# dlog log stream vs NATS JetStream, in one invocation on one machine.
#
#   benchmarks/log_vs_jetstream.sh BUILD_DIR
#   BENCH_SECONDS=5 benchmarks/log_vs_jetstream.sh build-release
#
# Starts, on loopback and under one temp dir: a throwaway ZooKeeper, three
# `dlogd logstore` nodes registered in it, and a three-node nats-server
# cluster with JetStream (file storage). Then, for each workload
#   throughput at 100 B, throughput at 1 KiB, rate 5000/s at 1 KiB
# it runs ROUNDS (default 3) alternating rounds - dlog, jetstream, dlog,
# jetstream, ... - of BENCH_SECONDS (default 10) each:
#   dlog:      BUILD_DIR/benchmarks/log_perf ...  (E=3, Qw=3, Qa=2, window 1000)
#   jetstream: BUILD_DIR/benchmarks/jetstream_bench ...  (R3 stream, window 1000)
# Both print one `RESULT system=... workload=... size=... records_per_s=...
# ... e2e_p99_us=... records_per_entry=...` line per round; this script prints
# every one, a durability statement, and ends with three ratios, each the
# MEDIAN OVER THE ROUNDS OF THE PER-ROUND RATIOS (round i's dlog figure over
# round i's JetStream figure):
#   ratio_log_throughput_100B_vs_jetstream=<x>   records/s, dlog / JetStream
#   ratio_log_throughput_1KiB_vs_jetstream=<x>   records/s, dlog / JetStream
#   ratio_log_p99_e2e_vs_jetstream=<x>           rate workload, dlog e2e p99 / JetStream e2e p99
# A ratio with no complete pair of rounds prints as n/a. If the dlog client
# is not built yet, the JetStream side still runs (and the ratios are n/a).
#
# Environment: BENCH_SECONDS (10), ROUNDS (3), RATE (5000), WINDOW (1000),
# KEEP_WORKDIR=1 keeps the temp dir (logs, data) instead of deleting it.
# Every process it starts is stopped on exit (only those, by PID).
set -euo pipefail

BENCH_NAME=log_vs_jetstream
# shellcheck source=benchmarks/lib/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"
bench_init 5000 "$@"

DLOG=$BUILD_DIR/benchmarks/log_perf
HAVE_DLOG=1
if [ ! -x "$DLOG" ]; then
  HAVE_DLOG=0
  log "NOTE: $DLOG does not exist yet (log_perf is not built): running the JetStream side only; the ratios will be n/a"
fi

bench_workdir
start_zookeeper
# shellcheck disable=SC2119  # (no extra logstore flags)
start_logstore_nodes
start_nats_cluster

check_servers() { check_cluster; }

# run_one SYSTEM ROUND TAG MODE SIZE
run_one() {
  local sys=$1 round=$2 tag=$3 mode=$4 size=$5
  local -a extra=()
  [ "$mode" = rate ] && extra=(--rate "$RATE")
  if [ "$sys" = dlog ]; then
    run_round "$sys" "$tag" "$round" \
      "$DLOG" --metadata "$METADATA" --ensemble 3 --write-quorum 3 --ack-quorum 2 ${LOG_PERF_ARGS:-} \
      --mode "$mode" "${extra[@]}" --size "$size" --window "$WINDOW" --seconds "$BENCH_SECONDS"
  else
    run_round "$sys" "$tag" "$round" \
      "$JSBENCH" --servers "$NATS_URLS" --replicas 3 --mode "$mode" "${extra[@]}" --size "$size" \
      --window "$WINDOW" --seconds "$BENCH_SECONDS" --warmup 1 --setup-timeout 30
  fi
}

# BENCH_WORKLOADS=rate_1KiB (for example): only those tags
run_workloads "throughput_100B throughput 100" "throughput_1KiB throughput 1024" "rate_1KiB rate 1024"

echo "durability: dlog acknowledges an entry once Qa=2 of its Qw=3 logstore nodes have fdatasync'ed it (journal group commit) and every earlier entry is acknowledged."
print_jetstream_durability

echo "ratio_log_throughput_100B_vs_jetstream=$(ratio throughput_100B records_per_s)"
echo "ratio_log_throughput_1KiB_vs_jetstream=$(ratio throughput_1KiB records_per_s)"
echo "ratio_log_p99_e2e_vs_jetstream=$(ratio rate_1KiB e2e_p99_us)"
