#!/usr/bin/env python3
"""kafka-python's transactional producer against a running Sluice broker:
committed and aborted transactions read back at both isolation levels, a
consume-transform-produce loop with send_offsets_to_transaction, a
read_committed consumer held at an open transaction, and a producer fenced by a
second one with the same transactional id.

Usage: kafka_python_txn_check.py [--bootstrap HOST:PORT] [--count N]

Exits 0 when every check passes, 1 on the first mismatch or client error. Topic,
group and transactional ids are unique per run, so it can be run again against
the same broker.
"""

import argparse
import os
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import ProducerFencedError
from kafka.structs import OffsetAndMetadata

TIMEOUT_S = 20
PARTITIONS = 2
# How long a consumer keeps polling after it has what it expects, to catch
# records it must not see (aborted ones, duplicates).
SETTLE_S = 1.5


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def create_topic(bootstrap, topic):
    client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        client.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}},
                             timeout_ms=10_000, wait_for_metadata=True)
    finally:
        client.close()


def transactional_producer(bootstrap, transactional_id):
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=transactional_id,
        request_timeout_ms=10_000,
        max_block_ms=TIMEOUT_S * 1000,
    )
    producer.init_transactions()
    return producer


def send_transaction(producer, topic, values, commit):
    """Sends `values` round-robin over the partitions in one transaction, then
    commits or aborts it."""
    producer.begin_transaction()
    futures = [producer.send(topic, value=v, partition=i % PARTITIONS)
               for i, v in enumerate(values)]
    producer.flush(timeout=TIMEOUT_S)
    for future in futures:
        future.get(timeout=TIMEOUT_S)
    if commit:
        producer.commit_transaction()
    else:
        producer.abort_transaction()


def read_all(bootstrap, topic, isolation_level, expected):
    """Reads the topic from the beginning until `expected` values arrived and
    nothing more came for SETTLE_S; returns the values per partition and checks
    that the consumer's position reached each partition's end."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level=isolation_level,
        request_timeout_ms=10_000 + 500,
        fetch_max_wait_ms=100,
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got = {tp.partition: [] for tp in tps}
        deadline = time.monotonic() + TIMEOUT_S
        settle_until = None
        while settle_until is None or time.monotonic() < settle_until:
            check(time.monotonic() < deadline,
                  f"{isolation_level}: read {sum(map(len, got.values()))} of {expected} records "
                  f"within {TIMEOUT_S} s")
            for tp, records in consumer.poll(timeout_ms=200).items():
                got[tp.partition].extend(r.value for r in records)
            if settle_until is None and sum(map(len, got.values())) >= expected:
                settle_until = time.monotonic() + SETTLE_S
        ends = consumer.end_offsets(tps)
        for tp in tps:
            position = consumer.position(tp)
            check(position == ends[tp],
                  f"{isolation_level}: position {position} on partition {tp.partition}, "
                  f"expected the end offset {ends[tp]} (past the markers)")
        return got
    finally:
        consumer.close()


def per_partition(values):
    split = {p: [] for p in range(PARTITIONS)}
    for i, v in enumerate(values):
        split[i % PARTITIONS].append(v)
    return split


def commit_and_abort(bootstrap, topic, run, count):
    """Three transactions (committed, aborted, committed): read_committed sees
    exactly the committed records in order, read_uncommitted sees all of them."""
    first = [f"committed-1-{i:03d}".encode() for i in range(count)]
    aborted = [f"aborted-{i:03d}".encode() for i in range(count)]
    second = [f"committed-2-{i:03d}".encode() for i in range(count)]
    producer = transactional_producer(bootstrap, f"compat-kp-txn-{run}")
    try:
        send_transaction(producer, topic, first, commit=True)
        send_transaction(producer, topic, aborted, commit=False)
        send_transaction(producer, topic, second, commit=True)
    finally:
        producer.close(timeout=TIMEOUT_S)
    print(f"kafka-python txn: committed {count}, aborted {count}, committed {count} records "
          f"to {topic}")

    committed = read_all(bootstrap, topic, "read_committed", 2 * count)
    kept = {p: per_partition(first)[p] + per_partition(second)[p] for p in range(PARTITIONS)}
    check(committed == kept, f"read_committed saw {committed}, expected {kept}")
    print(f"kafka-python txn: read_committed saw exactly the {2 * count} committed records, "
          "in order")

    everything = read_all(bootstrap, topic, "read_uncommitted", 3 * count)
    want = {p: per_partition(first)[p] + per_partition(aborted)[p] + per_partition(second)[p]
            for p in range(PARTITIONS)}
    check(everything == want, f"read_uncommitted saw {everything}, expected {want}")
    print(f"kafka-python txn: read_uncommitted saw all {3 * count} records, markers skipped")
    return kept


def consume_transform_produce(bootstrap, source, run, inputs):
    """`inputs` is what `source` holds committed, per partition. A member of a
    consumer group reads `source` read_committed and writes each value
    upper-cased to a new topic, with its offsets in the same transaction. The
    first round stops halfway and aborts, so neither its output nor its offsets
    count; the member rewinds to the beginning (nothing was committed) and a
    second round does all of it. The output holds every input exactly once and
    the group's offsets are at the ends."""
    sink = f"compat-kafka-python-txn-out-{run}"
    group = f"compat-kafka-python-txn-group-{run}"
    create_topic(bootstrap, sink)
    total = sum(map(len, inputs.values()))
    tps = [TopicPartition(source, p) for p in range(PARTITIONS)]
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        request_timeout_ms=10_000 + 500,
        fetch_max_wait_ms=100,
    )
    producer = transactional_producer(bootstrap, f"compat-kp-ctp-{run}")
    try:
        # Subscribed, so the member has a generation and its group metadata lets
        # the broker check it on TxnOffsetCommit (KIP-447).
        consumer.subscribe([source])

        def process(limit):
            """Consumes up to `limit` records, producing the output in an open
            transaction and sending the offsets reached to it."""
            producer.begin_transaction()
            done = 0
            deadline = time.monotonic() + TIMEOUT_S
            while done < limit:
                check(time.monotonic() < deadline, f"processed {done} of {limit} records")
                for tp, records in consumer.poll(timeout_ms=200, max_records=limit - done).items():
                    for record in records:
                        producer.send(sink, value=record.value.upper(), partition=tp.partition)
                    done += len(records)
            offsets = {tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in tps}
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            return offsets

        process(total // 2)
        producer.abort_transaction()
        for tp in tps:
            committed = consumer.committed(tp)
            check(committed is None, f"aborted round left offset {committed} on {tp}")
            consumer.seek_to_beginning(tp)
        print(f"kafka-python txn: aborted a round of {total // 2} records; no offsets committed")

        offsets = process(total)
        producer.commit_transaction()
        for tp in tps:
            committed = consumer.committed(tp)
            check(committed == offsets[tp].offset,
                  f"group {group} committed {committed} on {tp}, expected {offsets[tp].offset}")
    finally:
        producer.close(timeout=TIMEOUT_S)
        consumer.close()

    output = read_all(bootstrap, sink, "read_committed", total)
    want = {p: [v.upper() for v in values] for p, values in inputs.items()}
    check(output == want, f"read_committed output {output}, expected {want}")
    print(f"kafka-python txn: send_offsets_to_transaction: {total} records transformed "
          f"exactly once, group offsets at the ends")


def poll_values(consumer, want, message):
    """Polls until `want` values arrived, then SETTLE_S more for values beyond."""
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    settle_until = None
    while settle_until is None or time.monotonic() < settle_until:
        check(time.monotonic() < deadline, f"{message}: read {len(got)} of {want} records")
        for records in consumer.poll(timeout_ms=200).values():
            got.extend(r.value for r in records)
        if settle_until is None and len(got) >= want:
            settle_until = time.monotonic() + SETTLE_S
    return got


def open_transaction(bootstrap, run, count):
    """While a transaction is open, a read_committed consumer stops at its first
    offset (the last stable offset, which ListOffsets answers as the end) and
    sees its records once it commits."""
    topic = f"compat-kafka-python-txn-open-{run}"
    create_topic(bootstrap, topic)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    done = [f"done-{i:03d}".encode() for i in range(count)]
    pending = [f"pending-{i:03d}".encode() for i in range(count)]
    producer = transactional_producer(bootstrap, f"compat-kp-open-{run}")
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        request_timeout_ms=10_000 + 500,
        fetch_max_wait_ms=100,
    )
    try:
        send_transaction(producer, topic, done, commit=True)
        producer.begin_transaction()
        futures = [producer.send(topic, value=v, partition=i % PARTITIONS)
                   for i, v in enumerate(pending)]
        producer.flush(timeout=TIMEOUT_S)
        for future in futures:
            future.get(timeout=TIMEOUT_S)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got = poll_values(consumer, count, "read_committed with a transaction open")
        check(sorted(got) == sorted(done), f"with a transaction open, read_committed saw {got}")
        ends = consumer.end_offsets(tps)
        for tp in tps:
            # The partition's committed records, then the marker ending them.
            stable = len(per_partition(done)[tp.partition]) + 1
            check(ends[tp] == stable,
                  f"read_committed end offset {ends[tp]} on {tp}, expected the LSO {stable}")
        producer.commit_transaction()
        got = poll_values(consumer, count, "read_committed after the commit")
        check(sorted(got) == sorted(pending), f"after the commit, read_committed saw {got}")
    finally:
        consumer.close()
        producer.close(timeout=TIMEOUT_S)
    print(f"kafka-python txn: read_committed stopped at the open transaction (end offset = LSO) "
          f"and read its {count} records after the commit")


def fencing(bootstrap, run, count):
    """A second producer with the same transactional id fences the first: its open
    transaction is aborted, its commit fails with ProducerFencedError, and the
    second producer's transaction is the only one read_committed sees."""
    topic = f"compat-kafka-python-txn-fence-{run}"
    create_topic(bootstrap, topic)
    transactional_id = f"compat-kp-fence-{run}"
    zombie = transactional_producer(bootstrap, transactional_id)
    try:
        zombie.begin_transaction()
        futures = [zombie.send(topic, value=f"zombie-{i:03d}".encode(), partition=i % PARTITIONS)
                   for i in range(count)]
        zombie.flush(timeout=TIMEOUT_S)
        for future in futures:
            future.get(timeout=TIMEOUT_S)
        successor = transactional_producer(bootstrap, transactional_id)
        try:
            kept = [f"successor-{i:03d}".encode() for i in range(count)]
            send_transaction(successor, topic, kept, commit=True)
        finally:
            successor.close(timeout=TIMEOUT_S)
        try:
            zombie.commit_transaction()
            raise CheckFailed("the fenced producer committed its transaction")
        except ProducerFencedError:
            pass
    finally:
        zombie.close(timeout=TIMEOUT_S)
    got = read_all(bootstrap, topic, "read_committed", count)
    check(got == per_partition(kept), f"read_committed saw {got}, expected {per_partition(kept)}")
    print(f"kafka-python txn: a second producer fenced the first (ProducerFencedError); "
          f"read_committed saw only the second's {count} records")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=os.environ.get("BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()

    run = f"{os.getpid()}-{int(time.time())}"
    topic = f"compat-kafka-python-txn-{run}"
    try:
        create_topic(args.bootstrap, topic)
        inputs = commit_and_abort(args.bootstrap, topic, run, args.count)
        consume_transform_produce(args.bootstrap, topic, run, inputs)
        open_transaction(args.bootstrap, run, args.count)
        fencing(args.bootstrap, run, args.count)
    except CheckFailed as failure:
        print(f"kafka-python txn: FAILED: {failure}", file=sys.stderr)
        return 1
    except Exception as error:  # a client error is a failed check too
        print(f"kafka-python txn: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print("kafka-python txn: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
