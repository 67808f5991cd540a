#!/usr/bin/env bash
# The replication figures of docs/benchmarks.md: the same sluice-bench workload
# (acks=all) against one node with replication factor 1, then against a local
# three-node cluster (tools/cluster.sh) with replication factor 3 and
# min.insync.replicas=2; then the failover time (tools/bench/failover.py).
# Brokers run on BROKER_CPUS, the load generator on CLIENT_CPUS, so both runs
# give the brokers the same cores and the client stays off them.
#
# Usage: tools/bench/replication.sh OUT_DIR DATA_PARENT [sluice-bench flags...]
#   e.g. tools/bench/replication.sh /tmp/out /var/tmp --partitions 8 --rate 20000
set -euo pipefail
OUT=$1; PARENT=$2; shift 2
SLUICE=${SLUICE:-target/release/sluice}
BENCH=${BENCH:-target/release/sluice-bench}
PORT=${PORT:-19500}
DURATION=${DURATION:-30}
BROKER_CPUS=${BROKER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
ROUNDS=${ROUNDS:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
SLUICE=$(realpath "$SLUICE")

bench() {
  local name=$1 bootstrap=$2; shift 2
  local status=0
  taskset -c "$CLIENT_CPUS" "$BENCH" --bootstrap "$bootstrap" --duration "$DURATION" \
    --json "$OUT/$name.json" --hgrm "$OUT/$name-hgrm" "$@" | tee "$OUT/$name.txt" || status=$?
  echo "$name: sluice-bench exit status $status"
}

# One node, replication factor 1.
single=$PARENT/replication-single
rm -rf "$single"; mkdir -p "$single"
taskset -c "$BROKER_CPUS" "$SLUICE" serve --listen "127.0.0.1:$PORT" --data-dir "$single/data" \
  --shards 1 2>"$single/log" &
pid=$!
sleep 1
bench rf1-single-node "127.0.0.1:$PORT" --replication-factor 1 "$@"
kill -TERM $pid; wait $pid || true
rm -rf "$single"

# Three nodes, replication factor 3, min.insync.replicas=2.
cluster=$PARENT/replication-cluster
rm -rf "$cluster"
SLUICE_BIN=$SLUICE taskset -c "$BROKER_CPUS" "$HERE/../cluster.sh" start "$cluster" "$((PORT + 10))"
servers=127.0.0.1:$((PORT + 10)),127.0.0.1:$((PORT + 11)),127.0.0.1:$((PORT + 12))
sleep 2
bench rf3-three-nodes "$servers" --replication-factor 3 --topic-config min.insync.replicas=2 "$@"
BROKER_CPUS=$BROKER_CPUS SLUICE_BIN=$SLUICE taskset -c "$CLIENT_CPUS" python3 "$HERE/failover.py" "$cluster" "$ROUNDS" \
  | tee "$OUT/failover.txt"
"$HERE/../cluster.sh" stop "$cluster"
rm -rf "$cluster"
