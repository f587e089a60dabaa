"""The local store's own ceiling for the sign-up's shape of work, with no app in between:
N TransactWriteItems from T threads against DynamoDB Local started the way `make run` starts
it (the jar the project installed, data on /dev/shm), each one conditioned ADD on one hot
counter item plus four puts (registration, guard, activity, outbox-sized items).

    python -m bench.ddb_floor [--requests 1800] [--threads 32] [--repeat 3]

Prints one JSON line per run and the median tx/s last. `bench.signup` imports `measure` and
reports its sign-ups/s against this floor, measured in the same run.

Copied from the shared tool `/work/shared/tools/ddb_local_floor.py` of the development machine
(not part of a clone), with the same transactions, threads and timing. Changed: importable
(`measure()` returns the figures), and the jar and Java are found as `devtools.dynamodb_local`
finds them (the tool globbed the working directory for the jar and took `java` from PATH).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools import dynamodb_local  # noqa: E402


class _Local:
    """DynamoDB Local from the jar the project installed, started as `make run` starts it: quick
    JIT tier only, shared database, data on the given folder."""

    def __init__(self, data_dir):
        jar = dynamodb_local.find_jar()
        java = dynamodb_local.find_java()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [java, "-XX:TieredStopAtLevel=1", f"-Djava.library.path={jar.parent}/DynamoDBLocal_lib",
             "-jar", str(jar), "-port", str(port), "-sharedDb", "-disableTelemetry", "-dbPath", str(data_dir)],
            cwd=jar.parent, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.endpoint = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("DynamoDB Local did not start")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def measure(requests: int = 1800, threads: int = 32, repeat: int = 3, *, echo: bool = False) -> dict:
    """`repeat` runs of `requests` five-item transactions from `threads` threads on a fresh
    DynamoDB Local; the runs and the median tx/s."""
    data = tempfile.mkdtemp(prefix="ddb-floor-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    ddb = _Local(data)
    try:
        client = boto3.client("dynamodb", endpoint_url=ddb.endpoint, region_name="eu-west-1",
                              aws_access_key_id="x", aws_secret_access_key="x",
                              config=Config(max_pool_connections=threads * 2, retries={"max_attempts": 0}))
        for name in ("floor_meetups", "floor_regs", "floor_activity", "floor_outbox"):
            client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                      {"AttributeName": "sk", "AttributeType": "S"}],
                                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                           {"AttributeName": "sk", "KeyType": "RANGE"}])
        pad = "x" * 250
        runs = []
        for rep in range(repeat):
            meetup = f"m{rep}-{uuid.uuid4().hex[:6]}"
            client.put_item(TableName="floor_meetups", Item={"pk": {"S": meetup}, "sk": {"S": "META"},
                                                             "n": {"N": "0"}, "d": {"S": pad}})

            def one(i, meetup=meetup):
                t = time.perf_counter()
                rid = uuid.uuid4().hex
                tries = 0
                while True:
                    tries += 1
                    try:
                        client.transact_write_items(TransactItems=[
                            {"Update": {"TableName": "floor_meetups", "Key": {"pk": {"S": meetup}, "sk": {"S": "META"}},
                                        "UpdateExpression": "ADD n :one", "ConditionExpression": "n < :cap",
                                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":cap": {"N": "1000000"}}}},
                            {"Put": {"TableName": "floor_regs",
                                     "Item": {"pk": {"S": meetup}, "sk": {"S": "R#" + rid}, "d": {"S": pad}},
                                     "ConditionExpression": "attribute_not_exists(sk)"}},
                            {"Put": {"TableName": "floor_regs", "Item": {"pk": {"S": meetup}, "sk": {"S": "G#" + rid}},
                                     "ConditionExpression": "attribute_not_exists(sk)"}},
                            {"Put": {"TableName": "floor_activity",
                                     "Item": {"pk": {"S": "day"}, "sk": {"S": rid}, "d": {"S": pad}}}},
                            {"Put": {"TableName": "floor_outbox",
                                     "Item": {"pk": {"S": rid}, "sk": {"S": "M"}, "d": {"S": pad * 3}}}},
                        ])
                        return time.perf_counter() - t, tries
                    except client.exceptions.TransactionCanceledException:
                        continue

            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(threads) as pool:
                res = list(pool.map(one, range(requests)))
            wall = time.perf_counter() - t0
            lat = sorted(r[0] for r in res)
            runs.append({"wall_s": round(wall, 2), "tx_per_s": round(requests / wall, 1),
                         "p50_ms": round(lat[len(lat) // 2] * 1000), "p99_ms": round(lat[int(len(lat) * .99) - 1] * 1000),
                         "retries": sum(r[1] - 1 for r in res)})
            if echo:
                print(json.dumps(runs[-1]), flush=True)
        return {"requests": requests, "threads": threads, "runs": runs,
                "tx_per_s": round(statistics.median(r["tx_per_s"] for r in runs), 1)}
    finally:
        ddb.stop()
        shutil.rmtree(data, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=1800)
    p.add_argument("--threads", type=int, default=32)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    floor = measure(a.requests, a.threads, a.repeat, echo=True)
    print(f"median of {a.repeat}: {floor['tx_per_s']:.1f} tx/s "
          f"({a.requests} transactions of 5 items, {a.threads} threads, DynamoDB Local on /dev/shm)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
