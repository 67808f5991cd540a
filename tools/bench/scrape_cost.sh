#!/usr/bin/env bash
# What a /metrics scrape costs at scale: starts a release `sluice serve` with
# --shards 1 pinned to core 0 (fresh data directory, 127.0.0.1:19520, metrics on
# 127.0.0.1:19521), creates one topic of PARTITIONS partitions, writes one record
# to each, then times SCRAPES scrapes from core 1 (curl) and prints the body's
# size and series count, the p50 and max scrape time, and the broker's CPU
# seconds spent on the scrapes and the reactor stalls (shard held >= 25 ms)
# counted meanwhile. Runs twice: per-partition series, then
# --metrics-aggregate-partitions true. Needs kcat, curl and kafka-python.
#
# Usage: tools/bench/scrape_cost.sh SLUICE PARTITIONS DATA_DIR [SCRAPES]
set -euo pipefail
BIN=$1; N=$2; D=$3; SCRAPES=${4:-20}; P=19520; M=19521
cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
# Reactor stalls (the shard held 25 ms or more) counted so far.
stalls() { curl -sf 127.0.0.1:$M/metrics | awk '/^sluice_reactor_stalls_total/ { n += $2 } END { print n + 0 }'; }
run() {
  local aggregate=$1
  rm -rf "$D"; mkdir -p "$D"
  taskset -c 0 "$BIN" serve --listen 127.0.0.1:$P --data-dir "$D/data" --shards 1 \
    --metrics-listen 127.0.0.1:$M --metrics-aggregate-partitions "$aggregate" 2>>"$D.log" &
  local pid=$!
  for _ in $(seq 300); do kcat -b 127.0.0.1:$P -L -m 2 >/dev/null 2>&1 && break; sleep 0.2; done
  python3 -c "
from kafka.admin import KafkaAdminClient, NewTopic
admin = KafkaAdminClient(bootstrap_servers='127.0.0.1:$P', request_timeout_ms=900000)
admin.create_topics([NewTopic('scraped', $N, 1)], timeout_ms=900000)"
  python3 -c "
from kafka import KafkaProducer
producer = KafkaProducer(bootstrap_servers='127.0.0.1:$P', linger_ms=50, acks=1)
for p in range($N):
    producer.send('scraped', b'x', partition=p)
producer.flush(timeout=600)"
  local body; body=$(curl -sf 127.0.0.1:$M/metrics)
  local stalls_before; stalls_before=$(stalls)
  local before; before=$(cpu $pid)
  local times=()
  for _ in $(seq "$SCRAPES"); do
    times+=("$(taskset -c 1 curl -sf -o /dev/null -w '%{time_total}' 127.0.0.1:$M/metrics)")
  done
  local after; after=$(cpu $pid)
  local stalled; stalled=$(echo "$(stalls) - $stalls_before" | bc)
  printf '%s\n' "${times[@]}" | sort -n | awk -v agg="$aggregate" -v n="$N" \
    -v bytes="${#body}" -v series="$(grep -vc '^#' <<<"$body")" -v cpu="$(echo "$after - $before" | bc)" -v k="$SCRAPES" -v stalled="$stalled" '
    { t[NR] = $1 }
    END { printf "partitions %d aggregate %s: %d bytes, %d series; scrape p50 %.1f ms, max %.1f ms; broker cpu %.1f ms per scrape; reactor stalls during the scrapes %d\n",
          n, agg, bytes, series, t[int((NR + 1) / 2)] * 1000, t[NR] * 1000, cpu * 1000 / k, stalled }'
  kill -TERM $pid; wait $pid || true
  rm -rf "$D" "$D.log"
}
run false
run true
