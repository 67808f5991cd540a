#!/usr/bin/env bash
# Runs Tansu (a Rust Kafka-compatible broker, github.com/tansu-io/tansu) as a
# single broker on 127.0.0.1:PORT, for side-by-side benchmarks against Sluice
# with sluice-bench (e.g. `sluice-bench --bootstrap 127.0.0.1:PORT --vs ...`).
#
# Install (Tansu 0.6.0, built with rustc 1.95.0 in about 27 min on 1 job):
#   nice -n 19 env CARGO_BUILD_JOBS=1 cargo install tansu --version 0.6.0 --locked \
#     --root /work/tansu --features libsql,dynostore
# which gives /work/tansu/bin/tansu. Both features are needed: `memory://` is the
# dynostore engine (object_store's InMemory) and is NOT in the default features;
# `sqlite://` is the libsql engine (libsql's bundled SQLite, needs only a C compiler).
#
# Storage engines:
#   memory  --storage-engine memory://tansu/   everything in RAM, lost on exit.
#   sqlite  --storage-engine sqlite://tansu.db  DIR/tansu.db (+ -wal, -shm). Tansu
#           resolves the path against its working directory (even sqlite:///abs/x
#           becomes ./abs/x), so this script cd's into DIR first.
# Neither engine fsyncs before acknowledging a produce, whatever acks= says:
# memory never touches disk, and the SQLite engine (tansu-storage src/lite.rs)
# opens every connection with `PRAGMA journal_mode = WAL` and
# `PRAGMA synchronous = normal`, under which SQLite does not sync the WAL at
# commit, only at checkpoints. strace agreed: 200 produces acked one at a time
# (acks=all) made 3 fsync calls in all, from a WAL checkpoint. Compare with a
# Sluice configured not to fsync before ack, or say so next to the numbers.
#
# Client notes (Tansu 0.6.0): topics are not auto-created; create them with
# CreateTopics (sluice-bench does) or `tansu topic create --broker
# tcp://127.0.0.1:PORT --partitions N NAME`. Consumer groups, offset commits and
# idempotent producers work. librdkafka 2.0.2 (Debian's kcat) fails to parse
# Tansu's ApiVersions v3 response ("Read underflow"); librdkafka 2.12.1, as in
# sluice-bench, works, and kcat works with it via LD_LIBRARY_PATH.
#
# Usage: tools/bench/tansu.sh memory|sqlite PORT DIR
#   TANSU=/path/to/tansu (default: `tansu` on PATH, else /work/tansu/bin/tansu)
#   TANSU_CPU=CPU list for taskset (default 0)
# Runs the broker in the foreground (exec); stop it with SIGTERM or SIGINT.
# DIR is created if missing and not cleared: give a fresh one for a clean run.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 memory|sqlite PORT DIR" >&2
  exit 2
fi
MODE=$1; PORT=$2; DIR=$3
TANSU=${TANSU:-$(command -v tansu || echo /work/tansu/bin/tansu)}
CPU=${TANSU_CPU:-0}
case $MODE in
  memory) STORAGE=memory://tansu/ ;;
  sqlite) STORAGE=sqlite://tansu.db ;;
  *) echo "$0: storage must be memory or sqlite, not '$MODE'" >&2; exit 2 ;;
esac
[ -x "$TANSU" ] || { echo "$0: no tansu binary at '$TANSU' (see the header)" >&2; exit 1; }
TANSU=$(readlink -f "$TANSU")  # survives the cd below
mkdir -p "$DIR"
cd "$DIR"
exec taskset -c "$CPU" "$TANSU" broker \
  --listener-url "tcp://127.0.0.1:$PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$PORT" \
  --storage-engine "$STORAGE"
