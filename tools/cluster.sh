#!/usr/bin/env bash
# A local three-node Sluice cluster on 127.0.0.1 for development; every node is a
# combined broker and controller (process roles broker,controller).
#
# Usage: tools/cluster.sh start  [DIR] [BASE_PORT]   (defaults /tmp/sluice-cluster 19092)
#        tools/cluster.sh stop   [DIR]
#        tools/cluster.sh status [DIR]
#
# Node N (0, 1, 2) serves clients on BASE_PORT+N, the quorum on BASE_PORT+100+N
# and /metrics, /ready and /health on BASE_PORT+200+N.
# DIR/node-N holds its data directory, its log and its pid. The first start picks a
# cluster id (DIR/cluster-id) and formats every node with it; later starts reuse
# the directories, ports and id. stop sends SIGTERM, then SIGKILL to nodes still
# running after STOP_TIMEOUT seconds (default 30). The binary is $SLUICE_BIN, or
# target/debug/sluice; its other settings come from SLUICE_* variables as usual
# (one shard per node unless SLUICE_SHARDS says otherwise).
set -euo pipefail

NODES=3
COMMAND=${1:-}
DIR=${2:-/tmp/sluice-cluster}
BIN=${SLUICE_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/debug/sluice}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}
READY_TIMEOUT=30

die() { echo "cluster.sh: $*" >&2; exit 1; }

# The pid of node $1 if that process is running and is this node's sluice (a pid
# file can outlive its process, and the pid be reused).
pid_of() {
  local pid
  pid=$(cat "$DIR/node-$1/pid" 2>/dev/null) || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--data-dir $DIR/node-$1/data" || return 1
  echo "$pid"
}

base_port() {
  [ -f "$DIR/base-port" ] || die "no cluster in $DIR (run: $0 start $DIR)"
  cat "$DIR/base-port"
}

bootstrap() {
  local base n servers=()
  base=$(base_port)
  for ((n = 0; n < NODES; n++)); do servers+=("127.0.0.1:$((base + n))"); done
  (IFS=,; echo "${servers[*]}")
}

start() {
  [ -x "$BIN" ] || die "no sluice binary at $BIN (cargo build, or set SLUICE_BIN)"
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  if [ -f "$DIR/base-port" ]; then
    [ -z "${1:-}" ] || [ "$1" = "$(base_port)" ] ||
      die "$DIR was set up with base port $(base_port), not $1"
  else
    echo "${1:-19092}" >"$DIR/base-port"
  fi
  local base id n voters=()
  base=$(base_port)
  [ -f "$DIR/cluster-id" ] || "$BIN" random-cluster-id >"$DIR/cluster-id"
  id=$(cat "$DIR/cluster-id")
  for ((n = 0; n < NODES; n++)); do
    voters+=("$n@127.0.0.1:$((base + 100 + n))")
    if [ ! -f "$DIR/node-$n/data/meta.properties" ]; then
      mkdir -p "$DIR/node-$n/data"
      "$BIN" format --cluster-id "$id" --node-id "$n" --data-dir "$DIR/node-$n/data"
    fi
  done
  for ((n = 0; n < NODES; n++)); do
    if pid_of "$n" >/dev/null; then
      echo "node $n already running (pid $(pid_of "$n"))"
      continue
    fi
    # setsid: the nodes outlive this script and ignore the terminal's Ctrl-C.
    # The metrics endpoint of node N is on BASE_PORT+200+N (through the
    # environment, which builds from before it ignore).
    SLUICE_METRICS_LISTEN="127.0.0.1:$((base + 200 + n))" setsid "$BIN" serve --node-id "$n" --data-dir "$DIR/node-$n/data" \
      --shards "${SLUICE_SHARDS:-1}" \
      --listeners "PLAINTEXT://127.0.0.1:$((base + n)),CONTROLLER://127.0.0.1:$((base + 100 + n))" \
      --controller-quorum-voters "$(IFS=,; echo "${voters[*]}")" \
      </dev/null >>"$DIR/node-$n/log" 2>&1 &
    echo $! >"$DIR/node-$n/pid"
  done
  for ((n = 0; n < NODES; n++)); do
    local waited=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$((base + n))") 2>/dev/null; do
      pid_of "$n" >/dev/null || { tail -n 20 "$DIR/node-$n/log" >&2; die "node $n exited; log: $DIR/node-$n/log"; }
      ((waited++ < READY_TIMEOUT * 10)) || die "node $n does not accept on port $((base + n)); log: $DIR/node-$n/log"
      sleep 0.1
    done
  done
  echo "cluster $id in $DIR"
  echo "bootstrap servers: $(bootstrap)"
}

stop() {
  DIR=$(cd "$DIR" 2>/dev/null && pwd) || die "no cluster in $DIR"
  local n pid pids=() waited=0
  for ((n = 0; n < NODES; n++)); do
    if pid=$(pid_of "$n"); then
      kill -TERM "$pid"
      pids+=("$pid")
    fi
    rm -f "$DIR/node-$n/pid"
  done
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
      if ((waited++ >= STOP_TIMEOUT * 10)); then
        echo "pid $pid still running ${STOP_TIMEOUT}s after SIGTERM: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
  done
  echo "stopped ${#pids[@]} node(s) in $DIR"
}

status() {
  DIR=$(cd "$DIR" 2>/dev/null && pwd) || die "no cluster in $DIR"
  local n pid base
  base=$(base_port)
  for ((n = 0; n < NODES; n++)); do
    if pid=$(pid_of "$n"); then
      echo "node $n: running, pid $pid, 127.0.0.1:$((base + n)), controller 127.0.0.1:$((base + 100 + n))"
    else
      echo "node $n: stopped"
    fi
  done
  echo "bootstrap servers: $(bootstrap)"
}

case "$COMMAND" in
  start) start "${3:-}" ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: $0 start [DIR] [BASE_PORT] | stop [DIR] | status [DIR]" ;;
esac
