#!/usr/bin/env bash
# Consume throughput and broker CPU of reads from segment files (not the tail
# cache): produces 1,000,000 records of 1 KiB with kcat, restarts the broker (empty
# tail cache) after dropping the page cache (needs root), then consumes everything
# twice: cold (from disk) and warm (from the page cache).
#
# Usage: tools/zero_copy_consume.sh SLUICE_BINARY PORT LABEL [DATA_PARENT]
# Prints per run: records, wall time, MB/s, and the broker's CPU seconds
# (user + system, all threads) spent serving it.
set -euo pipefail
BIN=$1; PORT=$2; LABEL=$3; PARENT=${4:-/work/benchdata}
DIR=$PARENT/zc-$LABEL
rm -rf "$DIR"; mkdir -p "$DIR"
RECORDS=/tmp/records-1k.txt
[ -f $RECORDS ] || python3 -c "open('$RECORDS','wb').write(((b'x'*1023)+b'\n')*1000000)"
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
start() { "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DIR" 2>>"$DIR.log" & PID=$!; sleep 1; }
start
kcat -P -b "127.0.0.1:$PORT" -t zc -X acks=all -X linger.ms=5 -X batch.size=1000000 \
     -X queue.buffering.max.kbytes=1048576 -l $RECORDS
kill -TERM $PID; wait $PID || true
sync; echo 3 > /proc/sys/vm/drop_caches
start
TICK=$(getconf CLK_TCK)
for run in cold warm; do
  c0=$(cpu $PID); t0=$(date +%s.%N)
  n=$(kcat -C -b "127.0.0.1:$PORT" -t zc -o beginning -e -q -f '%o\n' | wc -l)
  t1=$(date +%s.%N); c1=$(cpu $PID)
  python3 -c "w=$t1-$t0; print(f'$LABEL $run: {$n} records in {w:.2f} s ({$n*1024/w/1e6:.0f} MB/s), broker CPU {($c1-$c0)/$TICK:.2f} s')"
done
kill -TERM $PID; wait $PID || true
rm -rf "$DIR"
