#!/usr/bin/env python3
"""Time from a partition leader's SIGKILL to the first acks=all produce that
succeeds on its successor, on a local cluster started by tools/cluster.sh.

Usage: tools/bench/failover.py CLUSTER_DIR [ROUNDS]

Each round creates nothing new: one topic (1 partition, replication factor 3,
min.insync.replicas=2) carries an idempotent acks=all producer sending a record
every 5 ms. The round kills the leader's process with SIGKILL, records the time,
and reports when the first record *sent after the kill* was acknowledged; then
restarts the node (tools/cluster.sh start) and waits until the ISR holds all
three replicas again (on the cores BROKER_CPUS names, if set). Needs
confluent-kafka (pip install confluent-kafka).
"""

import os
import signal
import statistics
import subprocess
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

SEND_EVERY = 0.005
ROUND_LIMIT = 120.0


def bootstrap(cluster_dir):
    base = int(open(os.path.join(cluster_dir, "base-port")).read())
    return ",".join(f"127.0.0.1:{base + n}" for n in range(3))


def partition_state(admin, topic):
    meta = admin.list_topics(topic, timeout=5).topics[topic].partitions[0]
    return meta.leader, list(meta.isrs)


def wait_for_full_isr(admin, topic):
    deadline = time.monotonic() + ROUND_LIMIT
    while time.monotonic() < deadline:
        try:
            leader, isr = partition_state(admin, topic)
            if leader >= 0 and len(isr) == 3:
                return leader
        except Exception:  # noqa: BLE001 - a node may be down; ask again
            pass
        time.sleep(0.2)
    sys.exit(f"the ISR of {topic} did not return to 3 replicas")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cluster_dir = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    servers = bootstrap(cluster_dir)
    admin = AdminClient({"bootstrap.servers": servers})
    topic = f"failover-{int(time.time())}"
    admin.create_topics(
        [NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})]
    )[topic].result(30)
    producer = Producer(
        {
            "bootstrap.servers": servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
            "message.timeout.ms": 120000,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    acked = []

    def delivered(err, msg):
        if err is None:
            acked.append((float(msg.value().decode()), time.monotonic()))

    figures = []
    script = os.path.join(os.path.dirname(__file__), "..", "cluster.sh")
    for round_number in range(rounds):
        leader = wait_for_full_isr(admin, topic)
        for _ in range(200):
            producer.produce(topic, str(time.monotonic()).encode(), on_delivery=delivered)
            producer.poll(0)
            time.sleep(SEND_EVERY)
        pid = int(open(os.path.join(cluster_dir, f"node-{leader}", "pid")).read())
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        first = None
        while first is None and time.monotonic() - killed < ROUND_LIMIT:
            producer.produce(topic, str(time.monotonic()).encode(), on_delivery=delivered)
            producer.poll(SEND_EVERY)
            after = [at for sent, at in acked if sent > killed]
            first = min(after) if after else None
        if first is None:
            sys.exit(f"round {round_number}: no acks=all produce succeeded within {ROUND_LIMIT} s")
        figures.append(first - killed)
        print(f"round {round_number}: leader {leader} killed, first produce acked after {first - killed:.3f} s", flush=True)
        producer.flush(30)
        restart = [script, "start", cluster_dir]
        if os.environ.get("BROKER_CPUS"):
            restart = ["taskset", "-c", os.environ["BROKER_CPUS"], *restart]
        subprocess.run(restart, check=True, stdout=subprocess.DEVNULL)
    print(
        f"failover over {rounds} rounds: median {statistics.median(figures):.3f} s, "
        f"min {min(figures):.3f} s, max {max(figures):.3f} s"
    )


if __name__ == "__main__":
    main()
