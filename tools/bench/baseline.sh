#!/usr/bin/env bash
# The baseline of docs/benchmarks.md: starts a release `sluice serve` (embedded
# defaults: fsync before ack) on a fresh data directory for each workload and runs
# sluice-bench against it, writing JSON, .hgrm and an SVG plot per workload.
#
# Usage: tools/bench/baseline.sh OUT_DIR DATA_PARENT [WORKLOAD...]
#   workloads: max (1), latency (2, needs MAX_RATE=msg/s), small (3), partitions (4)
#   EXTRA="--drain-timeout 400" adds flags to every sluice-bench run.
set -euo pipefail
OUT=$1; PARENT=$2; shift 2
SLUICE=${SLUICE:-target/release/sluice}
BENCH=${BENCH:-target/release/sluice-bench}
PORT=${PORT:-19400}
DURATION=${DURATION:-60}
mkdir -p "$OUT"

run() {
  local name=$1; shift
  local dir=$PARENT/baseline-$name
  rm -rf "$dir"
  "$SLUICE" serve --listen "127.0.0.1:$PORT" --data-dir "$dir" 2>"$dir.log" &
  local pid=$!
  sleep 1
  # A failed run (verification, errors) is reported, and the broker still stopped.
  local status=0
  "$BENCH" --bootstrap "127.0.0.1:$PORT" --duration "$DURATION" --consumer-mode group \
    --json "$OUT/$name.json" --hgrm "$OUT/$name-hgrm" --plot "$OUT/$name.svg" ${EXTRA:-} "$@" \
    | tee "$OUT/$name.txt" || status=$?
  echo "$name: sluice-bench exit status $status"
  kill -TERM $pid; wait $pid || true
  rm -rf "$dir"
}

[ $# -gt 0 ] || set -- max small partitions
for workload in "$@"; do
  case $workload in
    max) run 1-max-throughput ;;
    latency) run 2-latency-half-max --rate "${MAX_RATE:?set MAX_RATE to half the max msg/s}" ;;
    small) run 3-small-messages --message-size 100 ;;
    partitions) run 4-many-partitions --partitions 1000 ;;
    *) echo "unknown workload $workload" >&2; exit 2 ;;
  esac
done
