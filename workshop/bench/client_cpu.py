"""``python -m workshop.bench.client_cpu [--puts N] [--rounds R] TREE...``: the thin DynamoDB client's CPU per
conditional PutItem, for several source trees side by side in one run (figures, never assertions).

How it measures, so that only the client's own work is counted:
- DynamoDB is played by a canned server in its own process (its CPU is not ours): HTTP/1.1 kept alive, every
  request answered with DynamoDB's reply to a successful put (``{}``, with ``x-amz-crc32`` and a request id).
- Each tree runs in a child process of its own with ``PYTHONPATH`` set to the tree, so it imports that tree's
  ``processor``: the client is built as the processor builds it (``DynamoDBHttp.from_environment``, one
  connection), ~3.3 KB task items are serialised and put with the writer's condition through
  ``call("PutItem", body)``, after a warm-up; CPU is ``resource.getrusage(RUSAGE_SELF)`` user + system around
  each of ``--batches`` batches of puts. A round's figures are its least disturbed batch (the lowest µs/put: other
  load on a shared machine only ever adds) and its median batch.
- ``--memory`` replaces the socket with one that answers from memory at once: what is left is the client's own
  work per put (serialising, signing, framing, parsing), without the kernel's share.
- Trees take turns, round after round (A B A B ...), so drift on a shared machine hits each alike; the report
  gives every round's figures, their medians per tree, and each as a ratio of the first tree's.
Prints the report as JSON and writes it to ``--out`` when given.

Example (a worktree of the commit before a change next to the change)::

    git worktree add --detach ../base HEAD~1
    python -m workshop.bench.client_cpu ../base .
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from workshop.local.paths import project_dir

SERVER = r"""
import socket, sys, threading, zlib
from workshop.testing.http_requests import read_request
body = b"{}"
reply = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-RequestId: R\r\n"
         b"x-amz-crc32: %d\r\nContent-Length: %d\r\n\r\n" % (zlib.crc32(body), len(body)) + body)
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
def serve(sock):
    buffer = b""
    with sock:
        while (request := read_request(sock, buffer)) is not None:
            buffer = request[2]
            sock.sendall(reply)
while True:
    sock, _ = server.accept()
    threading.Thread(target=serve, args=(sock,), daemon=True).start()
"""

CHILD = r"""
import json, os, resource, socket, statistics, sys, zlib
endpoint, puts, batches, memory = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "memory"
if memory:  # the socket replaced by one answering at once from memory: the client's own work, no kernel
    body = b"{}"
    canned = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nx-amzn-RequestId: R\r\n"
              b"x-amz-crc32: %d\r\nContent-Length: %d\r\n\r\n" % (zlib.crc32(body), len(body)) + body)
    quiet, _ = os.pipe()  # a descriptor that never becomes readable: the idle check sees a live connection
    class Canned:
        def sendall(self, data): pass
        def recv(self, n): return canned
        def setsockopt(self, *args): pass
        def fileno(self): return quiet
        def close(self): pass
    socket.create_connection = lambda *args, **kwargs: Canned()
from processor.shard.dynamodb_http import DynamoDBHttp, serialise
from processor.shard.writer import CONDITION
client = DynamoDBHttp.from_environment(endpoint_url=endpoint, pool=1, timeout_s=10.0)
def request(n):
    arn = f"arn:aws:ecs:us-east-1:123456789012:task/bench/{n:032x}"
    containers = [{"M": {"name": {"S": f"c{k}"}, "lastStatus": {"S": "RUNNING"}, "image": {"S": "x" * 200},
                         "cpu": {"S": "256"}, "memory": {"S": "512"}}} for k in range(8)]
    item = {"taskArn": {"S": arn}, "version": {"N": str(n + 1)}, "lastStatus": {"S": "RUNNING"},
            "clusterArn": {"S": "arn:aws:ecs:us-east-1:123456789012:cluster/bench"}, "containers": {"L": containers},
            "blob": {"B": b"\x00" * 256}}
    return {"TableName": "tasks", "Item": item, "ConditionExpression": CONDITION,
            "ExpressionAttributeNames": {"#k": "taskArn", "#v": "version"},
            "ExpressionAttributeValues": {":v": {"N": str(n + 1)}}}
requests = [request(n) for n in range(puts // batches)]
for r in requests:
    assert client.call("PutItem", serialise(r)).ok
per_put = []
for _ in range(batches):
    before = resource.getrusage(resource.RUSAGE_SELF)
    for r in requests:
        client.call("PutItem", serialise(r))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    per_put.append(cpu / len(requests) * 1e6)
print(json.dumps({"min": min(per_put), "median": statistics.median(per_put),
                  "body_bytes": len(serialise(requests[0]))}))
"""


def _child_env(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    env.update(
        PYTHONPATH=str(tree),
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def measure(trees: list[Path], puts: int, rounds: int, batches: int, memory: bool) -> dict[str, object]:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, cwd=str(project_dir()))
    try:
        assert server.stdout is not None
        endpoint = f"http://127.0.0.1:{int(server.stdout.readline())}"
        lows: dict[str, list[float]] = {str(tree): [] for tree in trees}
        medians: dict[str, list[float]] = {str(tree): [] for tree in trees}
        body_bytes = 0
        for _ in range(rounds):
            for tree in trees:
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, endpoint, str(puts), str(batches), "memory" if memory else "socket"],
                    env=_child_env(tree),
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=True,
                )
                got = json.loads(done.stdout.strip().splitlines()[-1])
                lows[str(tree)].append(round(got["min"], 2))
                medians[str(tree)].append(round(got["median"], 2))
                body_bytes = got["body_bytes"]
    finally:
        server.terminate()
        server.wait(10)
    low = {tree: round(statistics.median(values), 2) for tree, values in lows.items()}
    typical = {tree: round(statistics.median(values), 2) for tree, values in medians.items()}
    first, first_typical = low[str(trees[0])], typical[str(trees[0])]
    return {
        "what": "client CPU per conditional PutItem (user+sys, getrusage), µs; "
        + ("socket replaced by a canned in-memory reply" if memory else "canned server in another process"),
        "puts_per_round": puts,
        "batches_per_round": batches,
        "rounds": rounds,
        "body_bytes": body_bytes,
        "least_disturbed_batch_by_round": lows,
        "median_batch_by_round": medians,
        "least_disturbed_us_per_put": low,
        "least_disturbed_ratio_to_first": {tree: round(m / first, 3) for tree, m in low.items()},
        "median_us_per_put": typical,
        "median_ratio_to_first": {tree: round(m / first_typical, 3) for tree, m in typical.items()},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "at": time.strftime("%FT%TZ")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workshop.bench.client_cpu", description=__doc__.split("\n")[0])
    parser.add_argument("trees", nargs="+", type=Path, help="source trees (the first is the baseline)")
    parser.add_argument("--puts", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=20, help="batches per round (CPU read around each)")
    parser.add_argument("--memory", action="store_true", help="no socket: a canned reply from memory")
    parser.add_argument("--out", type=Path, help="also write the report here (JSON)")
    args = parser.parse_args(argv)
    report = measure([tree.resolve() for tree in args.trees], args.puts, args.rounds, args.batches, args.memory)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
