"""Metadata path at scale: CreateTopics latency for 1, 1,000 and 10,000 partitions
on a single node (the quorum of one commits each change before answering), then
the restart time of that broker. Prints one line per measurement."""
import subprocess, sys, time, socket, os, signal, shutil
from kafka.admin import KafkaAdminClient, NewTopic

BIN = sys.argv[1]
DATA = sys.argv[2]
PORT = int(sys.argv[3])

def serving(port, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False

def start():
    log = open(os.path.join(os.path.dirname(DATA), "broker.log"), "a")
    return subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{PORT}", "--data-dir", DATA],
                            stdout=log, stderr=log)

shutil.rmtree(DATA, ignore_errors=True)
os.makedirs(DATA)
p = start()
t0 = time.time(); assert serving(PORT); print(f"first start to serving: {time.time()-t0:.2f} s")
admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{PORT}", request_timeout_ms=120000)
for n in (1, 1000, 10000):
    t = time.time()
    admin.create_topics([NewTopic(f"scale-{n}", n, 1)], timeout_ms=120000)
    print(f"CreateTopics {n} partitions: {(time.time()-t)*1000:.0f} ms")
admin.close()
p.send_signal(signal.SIGTERM); t = time.time(); p.wait(); print(f"clean stop with 11,001 partitions: {time.time()-t:.2f} s")
p = start(); t = time.time(); assert serving(PORT); print(f"restart to serving with 11,001 partitions: {time.time()-t:.2f} s")
p.send_signal(signal.SIGTERM); p.wait()
print("metadata log:", subprocess.run(["du", "-sh", os.path.join(DATA, "__cluster_metadata-0")], capture_output=True, text=True).stdout.strip())
