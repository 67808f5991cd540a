#!/usr/bin/env bash
# Sluice against Tansu, side by side in one sluice-bench --vs run: Sluice (A) with
# `--shards 1` and Tansu (B, tools/bench/tansu.sh) both pinned to core 0, the load
# generator on core 1, fresh data for each, removed afterwards.
#
# Usage: tools/bench/vs_tansu.sh memory|sqlite SLUICE OUT_PREFIX DATA_PARENT [sluice-bench flags...]
#   SLUICE_FLAGS="--durability interval" makes Sluice acknowledge before fdatasync,
#   as Tansu's engines do (see tansu.sh); by default it syncs before acking.
# Writes OUT_PREFIX.json and OUT_PREFIX.txt; BENCH overrides the sluice-bench binary.
set -euo pipefail
MODE=$1; SLUICE=$2; OUT=$3; PARENT=$4; shift 4
BENCH=${BENCH:-target/release/sluice-bench}
HERE=$(dirname "$(readlink -f "$0")")
A_DIR=$PARENT/vs-sluice; B_DIR=$PARENT/vs-tansu
rm -rf "$A_DIR" "$B_DIR"
# shellcheck disable=SC2086 # SLUICE_FLAGS is a list of flags
taskset -c 0 "$SLUICE" serve --listen 127.0.0.1:19511 --data-dir "$A_DIR" --shards 1 ${SLUICE_FLAGS:-} 2>"$OUT-sluice.log" &
A=$!
TANSU_CPU=0 "$HERE/tansu.sh" "$MODE" 19512 "$B_DIR" 2>"$OUT-tansu.log" &
B=$!
trap 'kill -TERM $A $B 2>/dev/null; wait $A $B 2>/dev/null; rm -rf "$A_DIR" "$B_DIR"' EXIT
sleep 2
taskset -c 1 "$BENCH" --bootstrap 127.0.0.1:19511 --vs 127.0.0.1:19512 --json "$OUT.json" "$@" | tee "$OUT.txt"
