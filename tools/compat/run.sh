#!/usr/bin/env bash
# Compatibility checks with third-party Kafka clients against a Sluice broker:
# kcat (Debian's build of librdkafka), including a consumer group (-G),
# kafka-python (kafka_python_check.py), kafka-python's transactional producer
# (kafka_python_txn_check.py) and a Quix Streams word count in exactly-once mode
# (quixstreams_eos_check.py, on confluent-kafka's librdkafka).
#
#   BOOTSTRAP=127.0.0.1:9092 tools/compat/run.sh     # a broker already running there
#   SLUICE_BIN=target/debug/sluice tools/compat/run.sh
#       # starts `sluice serve` on $BOOTSTRAP with a temp data dir, and at the end
#       # stops it with SIGTERM and checks it exits 0
#
# `cargo test` runs it the second way, on a free port (tests/compat.rs).
#
# Needs:  apt-get install -y kcat
#         python3 -m pip install 'kafka-python>=3,<4' 'quixstreams>=3,<4' 'confluent-kafka>=2,<3'
# Exits non-zero if any check fails. Topic names are unique per run.
set -euo pipefail

BOOTSTRAP=${BOOTSTRAP:-127.0.0.1:9092}
HERE=$(cd "$(dirname "$0")" && pwd)
RUN="$$-$(date +%s)"
COUNT=100
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-compat.XXXXXX")
BROKER_PID=

passed=0
failed=0

note() { printf 'compat: %s\n' "$*"; }

for tool in kcat python3 timeout; do
    command -v "$tool" >/dev/null || { note "$tool not found (apt-get install -y kcat)"; exit 2; }
done
python3 -c 'import kafka' 2>/dev/null || {
    note "kafka-python not installed (python3 -m pip install 'kafka-python>=3,<4')"
    exit 2
}
python3 -c 'import quixstreams, confluent_kafka' 2>/dev/null || {
    note "quixstreams not installed (python3 -m pip install 'quixstreams>=3,<4' 'confluent-kafka>=2,<3')"
    exit 2
}

# Bounded so that a broker that stops answering fails the run instead of hanging it.
kc() { timeout 30 kcat -b "$BOOTSTRAP" -X socket.timeout.ms=10000 "$@"; }

stop_broker() {
    [ -n "$BROKER_PID" ] || return 0
    local pid=$BROKER_PID status=0
    BROKER_PID=
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        note "broker did not exit within 30 s of SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        return 1
    fi
    wait "$pid" || status=$?
    [ "$status" -eq 0 ] || { note "broker exited with status $status after SIGTERM"; return 1; }
    note "broker exited 0 after SIGTERM"
}

cleanup() {
    local rc=$?
    stop_broker || rc=1
    if [ "$rc" -ne 0 ] && [ -s "$WORK/broker.stderr" ]; then
        note "broker stderr (last 50 lines):"
        tail -n 50 "$WORK/broker.stderr" >&2
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

if [ -n "${SLUICE_BIN:-}" ]; then
    mkdir "$WORK/data"
    "$SLUICE_BIN" serve --listen "$BOOTSTRAP" --data-dir "$WORK/data" 2>"$WORK/broker.stderr" &
    BROKER_PID=$!
    note "started $SLUICE_BIN (pid $BROKER_PID) on $BOOTSTRAP"
fi

# Wait (bounded) until the broker answers metadata requests.
deadline=$((SECONDS + 20))
until timeout 5 kcat -b "$BOOTSTRAP" -L -m 2 >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then note "no broker answering at $BOOTSTRAP"; exit 1; fi
    if [ -n "$BROKER_PID" ] && ! kill -0 "$BROKER_PID" 2>/dev/null; then
        note "the broker exited during startup"; exit 1
    fi
    sleep 0.2
done

# kcat: 100 keyed records in four batches of 25, one per codec, then read back.
kcat_roundtrip() {
    local topic=compat-kcat-$RUN
    : >"$WORK/expected"
    local codec i start=0
    for codec in gzip snappy lz4 zstd; do
        for i in $(seq "$start" $((start + COUNT / 4 - 1))); do
            printf 'key-%03d:value-%03d-%s\n' "$i" "$i" "$codec"
        done >"$WORK/in-$codec"
        kc -P -t "$topic" -p 0 -K: -z "$codec" -X acks=all -X message.timeout.ms=20000 \
            <"$WORK/in-$codec" 2>"$WORK/kcat-produce.err" || {
            note "kcat produce ($codec) failed:"; cat "$WORK/kcat-produce.err" >&2; return 1
        }
        if grep -qi 'fail\|error' "$WORK/kcat-produce.err"; then
            note "kcat produce ($codec) reported:"; cat "$WORK/kcat-produce.err" >&2; return 1
        fi
        awk -F: -v base="$start" '{ printf "%d %s %s\n", base + NR - 1, $1, $2 }' \
            "$WORK/in-$codec" >>"$WORK/expected"
        start=$((start + COUNT / 4))
    done
    kc -C -t "$topic" -p 0 -o beginning -c "$COUNT" -e -q -f '%o %k %s\n' \
        >"$WORK/got" 2>"$WORK/kcat-consume.err" || {
        note "kcat consume failed:"; cat "$WORK/kcat-consume.err" >&2; return 1
    }
    diff -u "$WORK/expected" "$WORK/got" >&2 || {
        note "kcat read back something else than it produced (diff above)"; return 1
    }
    note "kcat: produced $COUNT records (gzip, snappy, lz4, zstd) and read them back in order"

    # Metadata: the topic with one partition, led by the listed broker.
    kc -L -t "$topic" >"$WORK/metadata" 2>&1 || {
        note "kcat -L failed:"; cat "$WORK/metadata" >&2; return 1
    }
    grep -q "topic \"$topic\" with 1 partitions" "$WORK/metadata" &&
        grep -q "broker .* at $BOOTSTRAP" "$WORK/metadata" || {
        note "unexpected kcat -L output:"; cat "$WORK/metadata" >&2; return 1
    }
    note "kcat: metadata lists $topic with 1 partition"

    # ListOffsets: the latest offset is the record count.
    kc -Q -t "$topic:0:-1" >"$WORK/offsets" 2>&1 || {
        note "kcat -Q failed:"; cat "$WORK/offsets" >&2; return 1
    }
    grep -q "offset $COUNT\b" "$WORK/offsets" || {
        note "expected latest offset $COUNT, kcat -Q said:"; cat "$WORK/offsets" >&2; return 1
    }
    note "kcat: latest offset is $COUNT"
}

# kcat -G: a balanced consumer group reads half, commits, and the next member of
# the same group starts right after the commit.
kcat_group() {
    local topic=compat-kcat-group-$RUN group=compat-kcat-group-$RUN
    local half=$((COUNT / 2))
    seq 0 $((COUNT - 1)) | kc -P -t "$topic" -p 0 -X acks=all 2>"$WORK/group-produce.err" || {
        note "kcat produce for the group check failed:"; cat "$WORK/group-produce.err" >&2; return 1
    }
    # librdkafka's auto commit commits what kcat consumed when it closes at -c.
    kc -G "$group" "$topic" -o beginning -c "$half" -q -f '%o\n' \
        >"$WORK/group-first" 2>"$WORK/group-first.err" || true
    [ "$(wc -l <"$WORK/group-first")" -eq "$half" ] || {
        note "kcat -G read $(wc -l <"$WORK/group-first") records, expected $half:"
        cat "$WORK/group-first.err" >&2; return 1
    }
    kc -G "$group" "$topic" -c 1 -q -f '%o\n' >"$WORK/group-second" 2>"$WORK/group-second.err" || true
    [ "$(cat "$WORK/group-second")" = "$half" ] || {
        note "kcat -G resumed at '$(cat "$WORK/group-second")', expected $half:"
        cat "$WORK/group-second.err" >&2; return 1
    }
    note "kcat: group $group read $half records, committed, and resumed at offset $half"
}

kafka_python() {
    python3 "$HERE/kafka_python_check.py" --bootstrap "$BOOTSTRAP" --count "$COUNT"
}

# Commit, abort, both isolation levels and send_offsets_to_transaction.
kafka_python_txn() {
    timeout 120 python3 "$HERE/kafka_python_txn_check.py" --bootstrap "$BOOTSTRAP"
}

# Four application runs restoring their state from the changelog; one fails
# (Quix aborts), one exits abruptly (the broker aborts on the timeout).
quixstreams_eos() {
    timeout 180 python3 "$HERE/quixstreams_eos_check.py" --bootstrap "$BOOTSTRAP"
}

for check in kcat_roundtrip kcat_group kafka_python kafka_python_txn quixstreams_eos; do
    if "$check"; then
        passed=$((passed + 1))
    else
        note "$check FAILED"
        failed=$((failed + 1))
    fi
done

stop_broker || failed=$((failed + 1))
note "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
