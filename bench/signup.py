"""Sign-up rush: 1,800 sign-ups for the two extra online sessions (300 seats each) from 32
concurrent clients, against the service as `make run` serves it (its own DynamoDB Local on disk).

    python -m bench.signup [--runs 3] [--signups 1800] [--clients 32] [--warmup 300]

Part 1, over HTTP through `python -m devtools.run` (a fresh service for each of --runs rushes;
medians reported): throughput and p50/p99 latency after a warm-up, then checks that exactly 600
are confirmed and 1,200 waitlisted, each waitlist 1..600 in the order people were told. Part 2, in process against DynamoDB Local in memory, with botocore event hooks:
DynamoDB requests and consumed write units per sign-up (ReturnConsumedCapacity=TOTAL).
Compared with pretix measured on a machine like this one: 31.5 sign-ups/s, p99 2.7 s.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools import dynamodb_local  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PRETIX = {"throughput": 31.5, "p99": 2.7}
TARGET = {"throughput_ratio": 3.0, "p99": 0.9, "requests_per_signup": 2}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def session_payload(year_offset_days: int, title: str) -> dict:
    starts = datetime.now(timezone.utc) + timedelta(days=year_offset_days)
    return {"title": title, "kind": "extra", "province": None, "city": None, "mode": "online",
            "host": {"name": "Gelijke Kansen Alliantie"}, "capacity": 300, "waitlist": {"enabled": True},
            "starts_at": starts.isoformat(timespec="seconds"),
            "ends_at": (starts + timedelta(hours=2)).isoformat(timespec="seconds")}


def person(n: int, tag: str) -> dict:
    return {"name": f"Deelnemer {n}", "email": f"rush-{tag}-{n}@school.example.nl", "role": "teacher",
            "organisation": "Basisschool De Regenboog", "consent": True}


# --- part 1: over HTTP, through make run's service ---------------------------------------------

def start_service(port: int, admin: str, data_dir: str) -> subprocess.Popen:
    env = dict(os.environ, STAGE="local", PORT=str(port), ADMIN_TOKEN=admin, DATA_DIR=data_dir,
               TABLE_PREFIX=f"bench-{secrets.token_hex(3)}-", MAIL_DIR=str(Path(data_dir) / "mail"))
    env.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    process = subprocess.Popen([sys.executable, "-m", "devtools.run"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the service exited:\n" + process.stdout.read())
        try:
            if requests.get(f"http://127.0.0.1:{port}/meetups", timeout=2).status_code == 200:
                return process
        except requests.RequestException:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the service did not come up within 120 s")


def rush(base: str, meetup_ids: list[str], count: int, clients: int, tag: str):
    """`count` sign-ups spread over the meetups, from `clients` threads with their own connections."""
    # A lean client (one kept-alive http.client connection per thread): the load generator
    # shares the machine's two cores with the service, so it should take as little as it can.
    local = threading.local()
    results = []
    host, port = base.removeprefix("http://").split(":")

    def one(n: int):
        if getattr(local, "connection", None) is None:
            local.connection = http.client.HTTPConnection(host, int(port), timeout=60)
        meetup_id = meetup_ids[n % len(meetup_ids)]
        payload = json.dumps(person(n, tag))
        started = time.perf_counter()
        try:
            local.connection.request("POST", f"/meetups/{meetup_id}/registrations", payload,
                                     {"Content-Type": "application/json"})
            response = local.connection.getresponse()
            status, raw = response.status, response.read()
        except (OSError, http.client.HTTPException):
            local.connection.close()
            local.connection = None
            status, raw = 0, b"{}"
        elapsed = time.perf_counter() - started
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        results.append((meetup_id, status, elapsed, body.get("registration", {}), time.perf_counter()))

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - started, results


def check_rush(base: str, admin: str, meetup_ids: list[str], results) -> dict:
    headers = {"Authorization": f"Bearer {admin}"}
    told = {r[3]["id"]: r[3] for r in results if r[3].get("id")}
    summary = {}
    for meetup_id in meetup_ids:
        listed = requests.get(f"{base}/admin/meetups/{meetup_id}/registrations", headers=headers, timeout=60).json()
        regs = listed["registrations"]
        confirmed = [r for r in regs if r["status"] == "confirmed"]
        waiting = [r for r in regs if r["status"] == "waitlisted"]
        positions = [r["waitlist_position"] for r in waiting]
        told_here = {rid for rid, r in told.items() if r.get("meetup_id") == meetup_id}
        listed_ids = {r["id"] for r in regs}
        summary[meetup_id] = {
            "confirmed": len(confirmed), "waitlisted": len(waiting),
            "statuses": dict(Counter(r["status"] for r in regs)),
            "told_but_not_listed": sorted(told_here - listed_ids)[:5],
            "listed_but_not_told": sorted(listed_ids - told_here)[:5],
            "positions_are_1_to_n": positions == list(range(1, len(waiting) + 1)),
            "told_position_matches_stored": all(told[r["id"]]["waitlist_position"] == r["waitlist_position"]
                                                for r in waiting),
        }
    return summary


def part_http(args) -> dict:
    admin = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="klassen-bench-") as data_dir:
        port = dynamodb_local.free_port()
        service = start_service(port, admin, data_dir)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {admin}"}
        try:
            def create(title, days):
                response = requests.post(f"{base}/admin/meetups", json=session_payload(days, title), headers=headers)
                response.raise_for_status()
                return response.json()["id"]
            tag = secrets.token_hex(3)
            if args.warmup:
                warm = create("Warm-up", 100)
                rush(base, [warm], args.warmup, args.clients, "warm" + tag)
            sessions = [create("Extra online meetup 12 april", 140), create("Extra online meetup 19 april", 147)]
            elapsed, results = rush(base, sessions, args.signups, args.clients, tag)
            statuses = Counter(r[1] for r in results)
            latencies = [r[2] for r in results]
            outcome = Counter(r[3].get("status") for r in results)
            checks = check_rush(base, admin, sessions, results)
        finally:
            os.killpg(service.pid, signal.SIGINT)
            try:
                service.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(service.pid, signal.SIGKILL)
    throughput = len(results) / elapsed
    return {
        "signups": len(results), "clients": args.clients, "warmup": args.warmup,
        "seconds": round(elapsed, 2), "throughput_per_s": round(throughput, 1),
        "p50_s": round(percentile(latencies, 0.50), 3), "p99_s": round(percentile(latencies, 0.99), 3),
        "max_s": round(max(latencies), 3), "http_statuses": dict(statuses), "outcomes": dict(outcome),
        "checks": checks,
        "vs_pretix": {"throughput_ratio": round(throughput / PRETIX["throughput"], 2),
                      "p99_ratio": round(percentile(latencies, 0.99) / PRETIX["p99"], 2)},
    }


# --- part 2: in process, counting DynamoDB requests --------------------------------------------

def part_requests(args) -> dict:
    ddb = dynamodb_local.start()
    os.environ.update(dynamodb_local.local_aws_environment(ddb.endpoint))
    # Mail is sent apart from the request (the outbox stream, deployed): not on the path counted.
    os.environ.update({"STAGE": "local", "TABLE_PREFIX": f"count-{secrets.token_hex(3)}-", "MAIL_DIR": tempfile.mkdtemp(),
                       "SIGNING_SECRET": "bench", "POWERTOOLS_LOG_LEVEL": "WARNING", "MAIL_DELIVERY": "stream"})
    try:
        from devtools import tables
        tables.create_tables(os.environ["TABLE_PREFIX"])
        from chalicelib import catalogue, registration
        from chalicelib.models import Meetup

        phase = threading.local()
        counts: dict[str, Counter] = defaultdict(Counter)

        def before(params, **_):
            params["ReturnConsumedCapacity"] = "TOTAL"

        def after(http_response, parsed, model, **_):
            where = getattr(phase, "name", "other")
            phase.requests = getattr(phase, "requests", 0) + 1
            counts[where]["requests"] += 1
            counts[where][model.name] += 1
            consumed = parsed.get("ConsumedCapacity")
            for item in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
                counts[where]["write_units"] += item.get("WriteCapacityUnits", 0) or (
                    item.get("CapacityUnits", 0) if model.name in ("TransactWriteItems", "PutItem", "UpdateItem") else 0)
                counts[where]["read_units"] += item.get("ReadCapacityUnits", 0) or (
                    item.get("CapacityUnits", 0) if model.name in ("GetItem", "Query", "BatchGetItem") else 0)

        client = Meetup._get_connection().connection.client  # one client serves every model
        client.meta.events.register("before-parameter-build.dynamodb.*", before)
        client.meta.events.register("after-call.dynamodb.*", after)

        sessions = [catalogue.create_meetup(session_payload(140 + 7 * i, f"Extra {i}")).id for i in range(2)]
        tag = secrets.token_hex(3)

        per_status: dict[str, list[int]] = defaultdict(list)

        def one(n):
            phase.name, phase.requests = "signup", 0
            try:
                outcome = registration.sign_up(sessions[n % 2], person(n, tag))
            finally:
                phase.name = "other"
            per_status[outcome.registration.status].append(phase.requests)
            return outcome
        # The hint cache starts cold, as a fresh Lambda would; it warms within the first requests.
        with ThreadPoolExecutor(args.clients) as pool:
            outcomes = list(pool.map(one, range(args.signups)))
        signups = len(outcomes)
        statuses = Counter(o.registration.status for o in outcomes)
        path = counts["signup"]
        return {
            "signups": signups, "outcomes": dict(statuses),
            "dynamodb_requests_per_signup": round(path["requests"] / signups, 2),
            "write_units_per_signup": round(path["write_units"] / signups, 2),
            "read_units_per_signup": round(path["read_units"] / signups, 2),
            "requests_by_operation": {k: v for k, v in path.items() if k not in ("requests", "write_units", "read_units")},
            "requests_per_signup_by_outcome": {
                status: {"median": statistics.median(v), "mean": round(sum(v) / len(v), 2), "max": max(v)}
                for status, v in per_status.items()},
        }
    finally:
        ddb.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signups", type=int, default=1800)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3, help="rushes over HTTP, each on a fresh service; medians reported")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-requests", action="store_true", help="only the rush over HTTP")
    args = parser.parse_args()
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "pretix": PRETIX, "target": TARGET}
    if not args.skip_http:
        runs = []
        for number in range(1, args.runs + 1):
            runs.append(part_http(args))
            print(f"run {number}: {runs[-1]['throughput_per_s']}/s, p50 {runs[-1]['p50_s']} s, "
                  f"p99 {runs[-1]['p99_s']} s", flush=True)
        report["http_runs"] = runs
        median_run = sorted(runs, key=lambda r: r["throughput_per_s"])[len(runs) // 2]
        report["http"] = dict(median_run, **{
            "throughput_per_s": statistics.median(r["throughput_per_s"] for r in runs),
            "p50_s": statistics.median(r["p50_s"] for r in runs),
            "p99_s": statistics.median(r["p99_s"] for r in runs),
            "runs": len(runs),
        })
        report["http"]["vs_pretix"] = {
            "throughput_ratio": round(report["http"]["throughput_per_s"] / PRETIX["throughput"], 2),
            "p99_ratio": round(report["http"]["p99_s"] / PRETIX["p99"], 2)}
        print(json.dumps(report["http"], indent=2), flush=True)
    if not args.skip_requests:
        report["requests"] = part_requests(args)
        print(json.dumps(report["requests"], indent=2), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "signup.json").write_text(json.dumps(report, indent=2))
    http = report.get("http", {})
    ok = all(c["confirmed"] == 300 and c["waitlisted"] == args.signups // 2 - 300 and c["positions_are_1_to_n"]
             and c["told_position_matches_stored"] and not c["told_but_not_listed"]
             for run in report.get("http_runs", []) for c in run["checks"].values())
    if http:
        print(f"\nmedian of {http['runs']} runs: throughput {http['throughput_per_s']}/s ({http['vs_pretix']['throughput_ratio']}x pretix), "
              f"p50 {http['p50_s']} s, p99 {http['p99_s']} s; "
              f"checks {'ok' if ok else 'FAILED'}")
    if "requests" in report:
        print(f"{report['requests']['dynamodb_requests_per_signup']} DynamoDB requests and "
              f"{report['requests']['write_units_per_signup']} write units per sign-up")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
