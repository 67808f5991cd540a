#!/usr/bin/env bash
# Compares two builds of the broker with sluice-bench --vs: each gets a fresh data
# directory and `--shards 1` pinned to core 0, the load generator runs on core 1,
# and the data is removed afterwards (runs at max rate write gigabytes).
#
# Usage: tools/bench/vs_builds.sh OLD_SLUICE NEW_SLUICE OUT_PREFIX DATA_PARENT [sluice-bench flags...]
#   e.g. tools/bench/vs_builds.sh /tmp/sluice-old target/release/sluice /tmp/vs-100p /data --rounds 3 --duration 20 --partitions 100
# Writes OUT_PREFIX.json and OUT_PREFIX.txt; BENCH overrides the sluice-bench binary.
set -euo pipefail
OLD=$1; NEW=$2; OUT=$3; PARENT=$4; shift 4
BENCH=${BENCH:-target/release/sluice-bench}
A_DIR=$PARENT/vs-old; B_DIR=$PARENT/vs-new
# Two brokers at once: each its own metrics port (an older build ignores it).
export SLUICE_METRICS_LISTEN=127.0.0.1:0
rm -rf "$A_DIR" "$B_DIR"
taskset -c 0 "$OLD" serve --listen 127.0.0.1:19501 --data-dir "$A_DIR" --shards 1 2>"$OUT-old.log" &
A=$!
taskset -c 0 "$NEW" serve --listen 127.0.0.1:19502 --data-dir "$B_DIR" --shards 1 2>"$OUT-new.log" &
B=$!
trap 'kill -TERM $A $B 2>/dev/null; wait $A $B 2>/dev/null; rm -rf "$A_DIR" "$B_DIR"' EXIT
sleep 2
taskset -c 1 "$BENCH" --bootstrap 127.0.0.1:19501 --vs 127.0.0.1:19502 --json "$OUT.json" "$@" | tee "$OUT.txt"
