#!/usr/bin/env bash
# The issue-11 baseline: the broker with `--shards 1` pinned to core 0, sluice-bench
# pinned to core 1 (so latency is measured with the client off the broker's core),
# a fresh data directory per workload, removed afterwards; linger.ms 1, 1 KiB
# records, acks=all, fsync before ack. `colocated` runs the broker on its defaults
# (one shard per core) and the client unpinned, for the second column.
#
# Usage: tools/bench/split_cores.sh OUT_DIR DATA_PARENT WORKLOAD...
#   workloads: 8p-20k, 8p-max, 8p-half (needs HALF=msg/s), 1000p-20k, 10000p-20k, colocated-8p-20k
#   SLUICE, BENCH: binaries (default target/release/...); DURATION (20), WARMUP (5)
set -euo pipefail
OUT=$1; PARENT=$2; shift 2
SLUICE=${SLUICE:-target/release/sluice}
BENCH=${BENCH:-target/release/sluice-bench}
PORT=${PORT:-19450}
mkdir -p "$OUT"

run() {
  local name=$1 placement=$2; shift 2
  local dir=$PARENT/split-$name
  rm -rf "$dir"
  local broker=() client=()
  if [ "$placement" = split ]; then
    broker=(taskset -c 0 "$SLUICE" serve --shards 1)
    client=(taskset -c 1 "$BENCH")
  else
    broker=("$SLUICE" serve)
    client=("$BENCH")
  fi
  "${broker[@]}" --listen "127.0.0.1:$PORT" --data-dir "$dir" 2>"$OUT/$name-broker.log" &
  local pid=$!
  sleep 1
  local status=0
  "${client[@]}" --bootstrap "127.0.0.1:$PORT" --duration "${DURATION:-20}" --warmup "${WARMUP:-5}" \
    --linger-ms 1 --json "$OUT/$name.json" --plot "$OUT/$name.svg" "$@" \
    | tee "$OUT/$name.txt" || status=$?
  echo "$name: sluice-bench exit status $status"
  grep VmRSS "/proc/$pid/status" | tee -a "$OUT/$name.txt"
  echo "data directory: $(du -s --block-size=1M "$dir" | cut -f1) MiB allocated" | tee -a "$OUT/$name.txt"
  kill -TERM $pid; wait $pid || true
  rm -rf "$dir"
}

for workload in "$@"; do
  case $workload in
    8p-20k) run "$workload" split --partitions 8 --rate 20000 ;;
    8p-max) run "$workload" split --partitions 8 --rate 0 ;;
    8p-half) run "$workload" split --partitions 8 --rate "${HALF:?set HALF to half the max msg/s}" ;;
    1000p-20k) run "$workload" split --partitions 1000 --rate 20000 ;;
    10000p-20k) run "$workload" split --partitions 10000 --rate 20000 ;;
    colocated-8p-20k) run "$workload" colocated --partitions 8 --rate 20000 ;;
    *) echo "unknown workload $workload" >&2; exit 2 ;;
  esac
done
