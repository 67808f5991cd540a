#!/usr/bin/env bash
# Times what a broker does with many partitions besides serving them: creating
# one topic of N partitions, a clean stop, a restart (until it answers metadata),
# and a second stop; prints the broker's resident memory and CPU seconds after
# the creation and after the restart, and the data directory's size. The broker
# runs `--shards 1` pinned to core 0 on 127.0.0.1:19500 with a fresh data
# directory; the directory and the broker log beside it (DATA_DIR.log) are removed
# at the end. Needs kcat and kafka-python.
#
# Usage: tools/bench/partition_lifecycle.sh SLUICE PARTITIONS DATA_DIR
set -euo pipefail
BIN=$1; N=$2; D=$3; P=19500
rm -rf "$D"; mkdir -p "$D"
since() { echo "$(date +%s.%N) - $1" | bc; }
running() { pgrep -f "serve --listen 127.0.0.1:$P" >/dev/null; }
stop() {
  pkill -TERM -f "serve --listen 127.0.0.1:$P"
  local s; s=$(date +%s.%N)
  while running; do sleep 0.2; done
  echo "stop $(since "$s") s"
}
start() {
  taskset -c 0 "$BIN" serve --listen 127.0.0.1:$P --data-dir "$D" --shards 1 2>>"$D.log" &
  local s; s=$(date +%s.%N)
  for _ in $(seq 3000); do kcat -b 127.0.0.1:$P -L -m 2 >/dev/null 2>&1 && break; sleep 0.2; done
  echo "start $(since "$s") s"
}
usage() {
  local pid; pid=$(pgrep -f "serve --listen 127.0.0.1:$P")
  grep VmRSS "/proc/$pid/status"
  awk '{print "cpu s", ($14+$15)/100}' "/proc/$pid/stat"
}
start
s=$(date +%s.%N)
python3 -c "
from kafka.admin import KafkaAdminClient, NewTopic
admin = KafkaAdminClient(bootstrap_servers='127.0.0.1:$P', request_timeout_ms=900000)
admin.create_topics([NewTopic('lifecycle', $N, 1)], timeout_ms=900000)"
echo "create $(since "$s") s"
usage
stop
start
usage
stop
echo "allocated $(du -s --block-size=1M "$D" | cut -f1) MiB, apparent $(du -s --apparent-size --block-size=1M "$D" | cut -f1) MiB"
rm -rf "$D" "$D.log"
