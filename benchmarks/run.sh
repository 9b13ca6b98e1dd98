#!/usr/bin/env bash
# `make bench`: runs every end-to-end benchmark and prints its result lines.
# Usage: benchmarks/run.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
secs=${BENCH_SECONDS:-5}
echo "== node_bench (one dlogd logstore; baseline: raw pwrite+fdatasync, same batch size, same disk) =="
"$build/benchmarks/node_bench" --size 100 --connections 4 --window 256 --seconds "$secs" | grep -v '^ratio_vs_raw_fsync'
"$build/benchmarks/node_bench" --size 1024 --connections 4 --window 256 --seconds "$secs"
echo "== segment_bench (replicated E=3,Qw=3,Qa=2 vs E=Qw=Qa=1 on the same nodes, loopback) =="
"$build/benchmarks/segment_bench" --window 1000 --seconds "$secs"
echo "== log_vs_jetstream (log writer E=3,Qw=3,Qa=2 + ZooKeeper vs NATS JetStream R3; median of 3 alternating rounds) =="
BENCH_SECONDS="$secs" bash benchmarks/log_vs_jetstream.sh "$build"
echo "== pubsub_vs_jetstream (topic with 16 partitions, 1 KiB, 1 producer, 1 Failover consumer: broker + 3 logstores E=3,Qw=3,Qa=2 vs NATS JetStream R3, 16 subjects; median of 3 alternating rounds) =="
BENCH_SECONDS="$secs" bash benchmarks/pubsub_vs_jetstream.sh "$build"
