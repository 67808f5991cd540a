#!/usr/bin/env python3
"""Quix Streams in exactly-once mode against a running Sluice broker: a word count
with a state store, its input re-keyed by word through a repartition topic.

Usage: quixstreams_eos_check.py [--bootstrap HOST:PORT] [--sentences N]

Four application runs over one consumer group, each with an empty state
directory, so each restores the counts from the changelog topic first; a third
of the sentences is produced before each of the first three:
1. counts the first third;
2. counts the second third, but fails halfway through its words: Quix aborts the
   open transaction, so the counts, changelog entries and offsets written since
   its last commit are discarded;
3. counts what is left, but its process exits abruptly halfway (no abort): its
   open transaction is aborted by the broker when its timeout (5 s) expires;
4. counts what is left, restoring the state from a changelog that now holds
   aborted entries.
Every record the application writes, the repartitioned words, the changelog and
the counts, goes through a transaction with the consumed offsets
(processing_guarantee="exactly-once"), so the counts topic, read with
read_committed, must hold for each word exactly the counts 1, 2, ... up to its
number of occurrences: a count missing, repeated or wrong fails the check; read
with read_uncommitted it must hold more (the aborted ones). Exits 0 when it
passes, 1 otherwise. Topic and group names are unique per run.
"""

import argparse
import collections
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from quixstreams import Application

TIMEOUT_S = 30
PARTITIONS = 2
# The application stops after this many seconds without consuming anything; its
# commit interval is well below, so the repartitioned words are consumed (they
# become visible to its read_committed consumer only when a transaction commits)
# before it stops.
IDLE_STOP_S = 5.0
COMMIT_INTERVAL_S = 0.5
# How long the failing run waits before it fails, for its records to be sent.
FAIL_LINGER_S = 1.0
# The crashing run's transaction and session timeouts: the broker aborts its open
# transaction and removes it from the group after them, so the fourth run can
# join and read past it.
CRASH_TXN_TIMEOUT_MS = 5000
CRASH_SESSION_TIMEOUT_MS = 6000
CRASH_EXIT = 3
# How long the reader keeps polling after it has every count, to catch extra ones.
SETTLE_S = 1.5
WORDS = ["sluice", "kafka", "log", "offset", "marker", "epoch", "batch", "shard",
         "commit", "abort", "fetch", "stream"]


class CheckFailed(Exception):
    pass


class InjectedFailure(Exception):
    """Raised by the second run's count function to make it fail mid-transaction."""


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def sentence(i):
    """A deterministic sentence of 1 to 5 words, some repeated."""
    return " ".join(WORDS[(i * 7 + j * j * 5) % len(WORDS)] for j in range(1 + i % 5))


def create_topics(bootstrap, names):
    # Warnings and worse only: librdkafka notes at info level that a destroyed
    # admin client had unserved background events, which says nothing here.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    futures = admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names],
                                  operation_timeout=10, request_timeout=TIMEOUT_S)
    for future in futures.values():
        future.result(timeout=TIMEOUT_S)


def produce_sentences(bootstrap, topic, indices):
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    errors = []

    def delivered(error, _message):
        if error is not None:
            errors.append(error)

    for i in indices:
        producer.produce(topic, key=f"doc-{i}", value=json.dumps({"text": sentence(i)}),
                         on_delivery=delivered)
    left = producer.flush(TIMEOUT_S)
    check(left == 0 and not errors, f"{left} sentences undelivered, errors: {errors[:3]}")


def count_words(bootstrap, group, text_topic, counts_topic, state_dir, fail_at=None,
                crash=False):
    """Runs the word count application until it has been idle for IDLE_STOP_S;
    with `fail_at`, it raises InjectedFailure on that word instead, or with
    `crash` exits the process there."""
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=COMMIT_INTERVAL_S,
        state_dir=state_dir,
        loglevel="WARNING",
        request_timeout=TIMEOUT_S,
        broker_availability_timeout=TIMEOUT_S,
        producer_extra_config={"transaction.timeout.ms": CRASH_TXN_TIMEOUT_MS} if crash else {},
        # The crashed member leaves the group when its session expires; the
        # next run joins only then.
        consumer_extra_config={"session.timeout.ms": CRASH_SESSION_TIMEOUT_MS} if crash else {},
    )
    # Quix configures its logger once per process, so the level is set here:
    # the failing run logs the injected failure with its traceback, which is
    # expected, and any other error still ends that run with an exception.
    level = logging.WARNING if fail_at is None else logging.CRITICAL
    logging.getLogger("quixstreams").setLevel(level)
    text = app.topic(text_topic)
    counts = app.topic(counts_topic, key_serializer="str")

    counted = 0

    def count(word, state):
        nonlocal counted
        counted += 1
        if counted == fail_at:
            # Long enough for the producer to send what it holds, so the
            # transaction about to be aborted has counts on the broker.
            time.sleep(FAIL_LINGER_S)
            if crash:
                os._exit(CRASH_EXIT)
            raise InjectedFailure(f"injected failure at word {counted}")
        total = state.get("count", 0) + 1
        state.set("count", total)
        return {"word": word, "count": total}

    sdf = app.dataframe(text)
    sdf = sdf.apply(lambda value: value["text"].split(), expand=True)
    sdf = sdf.group_by(lambda word: word, name="word")
    sdf = sdf.apply(count, stateful=True)
    sdf.to_topic(counts)
    app.run(timeout=IDLE_STOP_S)


def crash_run(bootstrap, group, text_topic, counts_topic, state_dir, fail_at):
    """Runs count_words with `crash` in a child process (this script with
    --crash-run) and checks that it exited at `fail_at`."""
    spec = json.dumps([group, text_topic, counts_topic, state_dir, fail_at])
    command = [sys.executable, __file__, "--bootstrap", bootstrap, "--crash-run", spec]
    child = subprocess.run(command, timeout=4 * TIMEOUT_S,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    check(child.returncode == CRASH_EXIT,
          f"the crashing run exited {child.returncode}, expected {CRASH_EXIT}: "
          f"{child.stdout.decode(errors='replace')[-2000:]}")


def read_counts(bootstrap, topic, isolation_level, expected):
    """Reads the counts topic from the beginning: the counts of each word in the
    order written."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"{topic}-reader-{isolation_level}",
        "isolation.level": isolation_level,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    seen = collections.defaultdict(list)
    got = 0
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT_S
        settle_until = None
        while settle_until is None or time.monotonic() < settle_until:
            check(time.monotonic() < deadline,
                  f"{isolation_level}: read {got} of {expected} counts within {TIMEOUT_S} s")
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            value = json.loads(message.value())
            check(message.key().decode() == value["word"],
                  f"count of {value['word']} has key {message.key()!r}")
            seen[value["word"]].append(value["count"])
            got += 1
            if settle_until is None and got >= expected:
                settle_until = time.monotonic() + SETTLE_S
    finally:
        consumer.close()
    return seen


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=os.environ.get("BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--sentences", type=int, default=90)
    parser.add_argument("--crash-run", help="internal: the crashing run's parameters (JSON)")
    args = parser.parse_args()
    if args.crash_run:
        group, text_topic, counts_topic, state_dir, fail_at = json.loads(args.crash_run)
        count_words(args.bootstrap, group, text_topic, counts_topic, state_dir, fail_at, crash=True)
        return 1  # count_words exits the process at fail_at

    run = f"{os.getpid()}-{int(time.time())}"
    text_topic = f"compat-quix-text-{run}"
    counts_topic = f"compat-quix-counts-{run}"
    group = f"compat-quix-wordcount-{run}"
    third = args.sentences // 3
    first, second, last = (range(0, third), range(third, 2 * third),
                           range(2 * third, args.sentences))
    second_words = sum(len(sentence(i).split()) for i in second)
    last_words = sum(len(sentence(i).split()) for i in last)
    expected = collections.Counter(w for i in range(args.sentences) for w in sentence(i).split())
    total = sum(expected.values())
    work = tempfile.mkdtemp(prefix="sluice-quix-")
    try:
        create_topics(args.bootstrap, [text_topic, counts_topic])

        def run_app(number, fail_at=None):
            count_words(args.bootstrap, group, text_topic, counts_topic,
                        os.path.join(work, f"state-{number}"), fail_at)

        produce_sentences(args.bootstrap, text_topic, first)
        run_app(1)
        print(f"quixstreams: run 1 counted the words of {len(first)} sentences")
        produce_sentences(args.bootstrap, text_topic, second)
        try:
            run_app(2, fail_at=second_words // 2)
            raise CheckFailed("run 2 did not fail as injected")
        except InjectedFailure:
            pass
        print(f"quixstreams: run 2 failed at word {second_words // 2} of {second_words}")
        produce_sentences(args.bootstrap, text_topic, last)
        # What run 2 left plus the last third: at least last_words words.
        crash_run(args.bootstrap, group, text_topic, counts_topic,
                  os.path.join(work, "state-3"), last_words // 2)
        print(f"quixstreams: run 3 exited abruptly at word {last_words // 2}")
        run_app(4)
        print("quixstreams: run 4 counted the rest")

        seen = read_counts(args.bootstrap, counts_topic, "read_committed", total)
        for word, occurrences in sorted(expected.items()):
            check(seen.get(word) == list(range(1, occurrences + 1)),
                  f"{word!r} occurs {occurrences} times; counts written: {seen.get(word)}")
        extra = set(seen) - set(expected)
        check(not extra, f"counts for words never sent: {sorted(extra)}")
        print(f"quixstreams: read_committed: {len(expected)} words, {total} counts, "
              f"each word counted 1..n exactly once")
        everything = read_counts(args.bootstrap, counts_topic, "read_uncommitted", total)
        written = sum(map(len, everything.values()))
        check(written > total, f"read_uncommitted saw {written} counts, expected more than "
              f"the {total} committed (the aborted ones of runs 2 and 3)")
        print(f"quixstreams: read_uncommitted: {written} counts, {written - total} of them aborted")
    except CheckFailed as failure:
        print(f"quixstreams: FAILED: {failure}", file=sys.stderr)
        return 1
    except Exception as error:  # a client error is a failed check too
        print(f"quixstreams: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("quixstreams: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
