#!/usr/bin/env python3
"""kafka-python against a running Sluice broker: produce, consume, metadata, admin,
and a consumer group that commits and resumes after its commit.

Usage: kafka_python_check.py [--bootstrap HOST:PORT] [--count N]

Uses the client's defaults where they matter to users (kafka-python 3 producers
are idempotent by default). Exits 0 when every check passes, 1 on the first
mismatch or client error. Topic names are unique per run, so it can be run again
against the same broker.
"""

import argparse
import os
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

TIMEOUT_S = 20


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def key(i):
    return f"key-{i:03d}".encode()


def value(i):
    return f"value-{i:03d}-{'x' * (i % 37)}".encode()


def produce(bootstrap, topic, count):
    """Sends `count` keyed records (half uncompressed, half gzip), in order."""
    offsets = []
    for codec, part in ((None, range(0, count // 2)), ("gzip", range(count // 2, count))):
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            compression_type=codec,
            request_timeout_ms=10_000,
            max_block_ms=TIMEOUT_S * 1000,
        )
        try:
            futures = [producer.send(topic, key=key(i), value=value(i)) for i in part]
            producer.flush(timeout=TIMEOUT_S)
            for i, future in zip(part, futures):
                metadata = future.get(timeout=TIMEOUT_S)
                check(metadata.topic == topic, f"record {i} went to {metadata.topic}")
                offsets.append((metadata.partition, metadata.offset))
        finally:
            producer.close(timeout=TIMEOUT_S)
    partitions = {p for p, _ in offsets}
    check(partitions == {0}, f"records went to partitions {sorted(partitions)}, expected [0]")
    got = [o for _, o in offsets]
    check(got == list(range(count)), f"offsets {got[:5]}...{got[-5:]}, expected 0..{count - 1}")
    print(f"kafka-python: produced {count} records to {topic} (offsets 0..{count - 1})")


def consume(bootstrap, topic, count):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000 + 500,
        fetch_max_wait_ms=100,
    )
    try:
        check(topic in consumer.topics(), f"{topic} missing from the consumer's topic list")
        partitions = consumer.partitions_for_topic(topic)
        check(partitions == {0}, f"{topic} has partitions {partitions}, expected {{0}}")
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        records = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(records) < count:
            check(time.monotonic() < deadline,
                  f"read {len(records)} of {count} records within {TIMEOUT_S} s")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        check(len(records) == count, f"read {len(records)} records, expected {count}")
        for i, record in enumerate(records):
            check(record.offset == i, f"record {i} has offset {record.offset}")
            check(record.key == key(i), f"offset {i}: key {record.key!r}, expected {key(i)!r}")
            check(record.value == value(i), f"offset {i}: value {record.value!r}")
        end = consumer.end_offsets([tp])[tp]
        check(end == count, f"end offset {end}, expected {count}")
    finally:
        consumer.close()
    print(f"kafka-python: consumed {count} records back in order, end offset {count}")


def group_consume(bootstrap, topic, count):
    """Reads half the records in a group, commits, and a new member of the same
    group resumes right after the commit; the group shows in the admin API."""
    group = f"{topic}-group"
    half = count // 2

    def member():
        return KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=10_000 + 500,
            fetch_max_wait_ms=100,
        )

    tp = TopicPartition(topic, 0)
    first = member()
    try:
        records = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(records) < half:
            check(time.monotonic() < deadline, f"group read {len(records)} of {half} records")
            for batch in first.poll(timeout_ms=500, max_records=half - len(records)).values():
                records.extend(batch)
        check([r.offset for r in records] == list(range(half)),
              f"group read offsets {[r.offset for r in records][:5]}...")
        first.commit()
        check(first.committed(tp) == half, f"committed {first.committed(tp)}, expected {half}")
    finally:
        first.close()
    second = member()
    try:
        deadline = time.monotonic() + TIMEOUT_S
        resumed = []
        while not resumed:
            check(time.monotonic() < deadline, "the second member read nothing")
            for batch in second.poll(timeout_ms=500).values():
                resumed.extend(batch)
        check(resumed[0].offset == half, f"resumed at {resumed[0].offset}, expected {half}")
    finally:
        second.close()
    client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        listed = [g["group_id"] for g in client.list_groups()]
        check(group in listed, f"{group} not in ListGroups: {listed}")
        offsets = client.list_group_offsets(group)[group]
        check(offsets[tp].offset == half, f"admin sees offset {offsets[tp].offset}, expected {half}")
    finally:
        client.close()
    print(f"kafka-python: group {group} committed {half} and resumed at offset {half}")


def admin(bootstrap, topic):
    client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    try:
        client.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}},
                             timeout_ms=10_000, wait_for_metadata=True)
        check(topic in client.list_topics(), f"{topic} not listed after CreateTopics")
        [described] = client.describe_topics([topic])
        check(described.get("error_code", 0) == 0, f"describe {topic}: {described}")
        ids = sorted(p["partition_index"] for p in described["partitions"])
        check(ids == [0, 1, 2], f"{topic} has partitions {ids}, expected [0, 1, 2]")
        print(f"kafka-python: created {topic} with 3 partitions")

        client.delete_topics([topic], timeout_ms=10_000)
        deadline = time.monotonic() + TIMEOUT_S
        while topic in client.list_topics():
            check(time.monotonic() < deadline, f"{topic} still listed {TIMEOUT_S} s after DeleteTopics")
            time.sleep(0.1)
        print(f"kafka-python: deleted {topic}")
    finally:
        client.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=os.environ.get("BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()

    run = f"{os.getpid()}-{int(time.time())}"
    topic = f"compat-kafka-python-{run}"
    try:
        produce(args.bootstrap, topic, args.count)
        consume(args.bootstrap, topic, args.count)
        group_consume(args.bootstrap, topic, args.count)
        admin(args.bootstrap, f"compat-kafka-python-admin-{run}")
    except CheckFailed as failure:
        print(f"kafka-python: FAILED: {failure}", file=sys.stderr)
        return 1
    except Exception as error:  # a client error is a failed check too
        print(f"kafka-python: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print("kafka-python: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
