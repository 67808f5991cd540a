#!/usr/bin/env bash
# The log cleaner's figures (issue 13), broker `--shards 1` on core 0, clients on
# core 1, fsync before ack, a fresh data directory per case, removed afterwards.
#
# throughput: fills one compacted partition (segment.bytes 128 MiB) with
#   DIRTY_MB of 1 KiB updates to KEYS keys while the cleaner is off (at 50,000
#   msg/s), restarts
#   the broker with it on, and reports its passes ("cleaned log" lines: bytes
#   read and written, milliseconds, MB/s of the dirty log).
# impact: a fixed-rate sluice-bench (8 partitions, RATE msg/s, 1 KiB) alone,
#   then beside a second one writing RATE_COMPACT msg/s of updates to a
#   compacted topic (segment.bytes 8 MiB, min.cleanable.dirty.ratio RATIO, 0.5), with
#   the cleaner on and with it off, so the cleaner's own cost shows apart from
#   the extra load, and with the cleaner's I/O limited to LIMIT bytes/s
#   (20000000).
#
# Usage: tools/bench/cleaner.sh OUT_DIR DATA_PARENT throughput|impact...
#   SLUICE, BENCH: binaries (default target/release/...); DURATION (30), RATE (20000),
#   RATE_COMPACT (10000), DIRTY_MB (1024), KEYS (100000), RATIO (0.5), LIMIT (20000000)
set -euo pipefail
OUT=$1; PARENT=$2; shift 2
SLUICE=${SLUICE:-target/release/sluice}
BENCH=${BENCH:-target/release/sluice-bench}
PORT=${PORT:-19460}
DURATION=${DURATION:-30}
RATE=${RATE:-20000}
RATE_COMPACT=${RATE_COMPACT:-10000}
DIRTY_MB=${DIRTY_MB:-1024}
KEYS=${KEYS:-100000}
mkdir -p "$OUT"

BROKER_PID=
start_broker() {
  local dir=$1 log=$2; shift 2
  taskset -c 0 "$SLUICE" serve --shards 1 --listen "127.0.0.1:$PORT" --data-dir "$dir" \
    --log-cleaner-backoff-ms 100 "$@" 2>"$log" &
  BROKER_PID=$!
  sleep 1
}

stop_broker() {
  kill -TERM "$BROKER_PID"; wait "$BROKER_PID" || true
}

compacted=(--topic-config cleanup.policy=compact --topic-config "min.cleanable.dirty.ratio=${RATIO:-0.5}")

throughput() {
  local dir=$PARENT/cleaner-throughput
  rm -rf "$dir"
  start_broker "$dir" "$OUT/throughput-fill.log" --log-cleaner-enable false
  local records=$((DIRTY_MB * 1024))
  taskset -c 1 "$BENCH" --bootstrap "127.0.0.1:$PORT" --topic cleaned --partitions 1 \
    --consumers 0 --keys random --key-space "$KEYS" --rate 50000 --warmup 0 \
    --duration $((records / 50000 + 5)) --linger-ms 5 --drain-timeout 1 \
    "${compacted[@]}" --topic-config segment.bytes=134217728 | tee "$OUT/throughput-fill.txt"
  stop_broker
  echo "dirty log: $(du -s --block-size=1M "$dir/cleaned-0" | cut -f1) MiB" | tee -a "$OUT/throughput.txt"
  start_broker "$dir" "$OUT/throughput-broker.log"
  # Done once passes stop coming: the log has nothing dirty left.
  local deadline=$((SECONDS + 600)) passes=0 last=-1
  while [ "$passes" -eq 0 ] || [ "$passes" -ne "$last" ]; do
    [ $SECONDS -lt $deadline ] || { echo "the cleaner did not settle in 600 s" >&2; break; }
    last=$passes
    sleep 10
    passes=$(grep -c 'cleaned log' "$OUT/throughput-broker.log" || true)
  done
  grep 'cleaned log' "$OUT/throughput-broker.log" | sed 's/\x1b\[[0-9;]*m//g' | tee -a "$OUT/throughput.txt"
  echo "cleaned log: $(du -s --block-size=1M "$dir/cleaned-0" | cut -f1) MiB" | tee -a "$OUT/throughput.txt"
  stop_broker
  rm -rf "$dir"
}

impact_case() {
  local name=$1; shift
  local dir=$PARENT/cleaner-$name
  rm -rf "$dir"
  start_broker "$dir" "$OUT/$name-broker.log" "$@"
  local side=
  if [ "$name" != alone ]; then
    taskset -c 1 "$BENCH" --bootstrap "127.0.0.1:$PORT" --topic compacted --partitions 1 \
      --consumers 0 --keys random --key-space 10000 --rate "$RATE_COMPACT" --warmup 0 \
      --duration $((DURATION + 15)) --linger-ms 1 --drain-timeout 1 \
      "${compacted[@]}" --topic-config segment.bytes=8388608 >"$OUT/$name-compacting.txt" 2>&1 &
    side=$!
    sleep 5
  fi
  taskset -c 1 "$BENCH" --bootstrap "127.0.0.1:$PORT" --partitions 8 --rate "$RATE" \
    --duration "$DURATION" --warmup 5 --linger-ms 1 --json "$OUT/$name.json" | tee "$OUT/$name.txt"
  if [ -n "$side" ]; then wait "$side" || true; fi
  echo "cleaner passes: $(grep -c 'cleaned log' "$OUT/$name-broker.log" || true)" | tee -a "$OUT/$name.txt"
  stop_broker
  rm -rf "$dir"
}

for case in "$@"; do
  case $case in
    throughput) throughput ;;
    impact)
      impact_case alone
      impact_case beside-cleaner-on
      impact_case beside-cleaner-off --log-cleaner-enable false
      impact_case beside-cleaner-limited --log-cleaner-io-max-bytes-per-second "${LIMIT:-20000000}"
      ;;
    *) echo "unknown case $case" >&2; exit 2 ;;
  esac
done
