"""Sign-up rush: 1,800 sign-ups for the two extra online sessions (300 seats each) from 32
concurrent clients, against the service as `make run` serves it.

    python -m bench.signup [--processes 1,4] [--runs 3] [--signups 1800] [--clients 32] [--warmup 300]

Part 1, over HTTP through `python -m devtools.run` (a fresh service for each of --runs rushes;
medians reported): with --processes N, N app processes (each its own interpreter and caches, on
its own port) share one DynamoDB Local (as `make run` starts it: RAM copy, quick JIT tier), one
table prefix and one mail folder; the clients are spread round-robin over them. Throughput and
p50/p99 latency after a warm-up, then checks (exit 1 if one fails): no sign-up refused (the
waitlist has no maximum, so all must be confirmed or waitlisted), exactly 600 confirmed and
1,200 waitlisted, each waitlist 1..600 in the order people were told, and every delivered email
(the file backend's MAIL_DIR; its position is composed when it is sent) carrying the position
the database holds after the rush. Each round also measures the store's own floor for the same
work (bench.ddb_floor: the transactions straight into DynamoDB Local, no app); sign-ups/s are
reported against it (target ratio >= 0.6, p99 < 0.7 s: reported, not asserted).
Part 2, in process against DynamoDB Local in memory, with botocore event hooks:
DynamoDB requests per sign-up, all told (a batch of waitlist joins is one transaction, made by
one of the requests it answers). Write units are not taken from this run: DynamoDB Local reports
a transaction's consumed capacity per table, not per item, so a batch is under-counted;
bench/waitlist.py measures them one operation at a time and bench/scaling.py sizes them.
Compared with pretix measured on a machine like this one: 33.6 sign-ups/s, p99 2.5 s.
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import re
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
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import policy
from email.parser import BytesParser
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import ddb_floor  # noqa: E402
from devtools import dynamodb_local  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PRETIX = {"throughput": 33.6, "p99": 2.5}
CAPACITY = 300  # seats of each session
# Reported, not asserted: sign-ups/s against the store's own floor for the same transactions
# (bench.ddb_floor, same run), and p99 latency.
TARGET = {"ratio_to_floor": 0.6, "p99_s": 0.7, "requests_per_signup": 2}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def session_payload(year_offset_days: int, title: str) -> dict:
    starts = datetime.now(timezone.utc) + timedelta(days=year_offset_days)
    return {"title": title, "kind": "extra", "province": None, "city": None, "mode": "online",
            "host": {"name": "Gelijke Kansen Alliantie"}, "capacity": CAPACITY, "waitlist": {"enabled": True},
            "starts_at": starts.isoformat(timespec="seconds"),
            "ends_at": (starts + timedelta(hours=2)).isoformat(timespec="seconds")}


def person(n: int, tag: str) -> dict:
    return {"name": f"Deelnemer {n}", "email": f"rush-{tag}-{n}@school.example.nl", "role": "teacher",
            "organisation": "Basisschool De Regenboog", "consent": True}


# --- part 1: over HTTP, through make run's service ---------------------------------------------

def start_store(data_dir: Path) -> tuple[dynamodb_local.DynamoDBLocal, dynamodb_local.RamWorkingCopy]:
    """DynamoDB Local as `make run` starts it (a RAM working copy of the data, the quick JIT
    tier), shared by every app process of the run."""
    store = dynamodb_local.RamWorkingCopy(data_dir / "dynamodb")
    ddb = dynamodb_local.start(data_dir=store.open(), log_path=data_dir / "dynamodb.log")
    return ddb, store


def start_services(count: int, admin: str, data_dir: Path, endpoint: str,
                   command: tuple[str, ...] = ("-m", "devtools.run")) -> list[tuple[subprocess.Popen, int]]:
    """`count` app processes as `make run` serves the app (`python -m devtools.run`), each its own
    interpreter and caches, on its own port; one DynamoDB Local, one table prefix, one mail
    folder and one signing secret between them. The first creates the tables and loads the demo
    tour; the others start once it is up (they find both there)."""
    shared = dict(os.environ, STAGE="local", ADMIN_TOKEN=admin, AWS_ENDPOINT_URL_DYNAMODB=endpoint,
                  TABLE_PREFIX=f"bench-{secrets.token_hex(3)}-", MAIL_DIR=str(data_dir / "mail"),
                  SIGNING_SECRET=secrets.token_urlsafe(32))
    ports = [dynamodb_local.free_port() for _ in range(count)]
    shared["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{ports[0]}"
    services: list[tuple[subprocess.Popen, int]] = []

    def launch(number: int, port: int) -> tuple[subprocess.Popen, int]:
        env = dict(shared, PORT=str(port), DATA_DIR=str(data_dir / f"app{number}"))
        # Its output to a file (a pipe nobody reads would stop the server once it is full).
        with open(data_dir / f"app{number}.log", "wb") as log:
            process = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        process.log_path = data_dir / f"app{number}.log"
        services.append((process, port))
        return process, port

    try:
        _wait_up(*launch(0, ports[0]))
        rest = [launch(number, port) for number, port in enumerate(ports[1:], start=1)]
        for process, port in rest:
            _wait_up(process, port)
    except BaseException:
        stop_services(services)
        raise
    return services


def _wait_up(process: subprocess.Popen, port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the service exited:\n" + process.log_path.read_text(errors="replace"))
        try:
            if requests.get(f"http://127.0.0.1:{port}/meetups", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the service on port {port} did not come up within {timeout:.0f} s")


def stop_services(services: list[tuple[subprocess.Popen, int]]) -> None:
    for process, _ in services:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
    for process, _ in services:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass
class Answer:
    n: int
    meetup_id: str
    status: int  # HTTP status; 0: no answer
    seconds: float
    registration: dict
    error: str | None
    at: float


def rush(ports: list[int], meetup_ids: list[str], count: int, clients: int, tag: str):
    """`count` sign-ups spread over the meetups, from `clients` threads with their own connections.
    With several app processes the clients are spread round-robin over them (client k keeps one
    kept-alive connection to process k mod len(ports)), as a load balancer spreads connections."""
    # A lean client (one kept-alive http.client connection per thread): the load generator
    # shares the machine's two cores with the service, so it should take as little as it can.
    local = threading.local()
    clients_seen = itertools.count()
    results = []

    def one(n: int):
        if not hasattr(local, "port"):
            local.port, local.connection = ports[next(clients_seen) % len(ports)], None
        meetup_id = meetup_ids[n % len(meetup_ids)]
        payload = json.dumps(person(n, tag))
        started = time.perf_counter()
        status, raw = 0, b"{}"
        for _ in range(2):
            reused = local.connection is not None
            if not reused:
                local.connection = http.client.HTTPConnection("127.0.0.1", local.port, timeout=60)
            try:
                local.connection.request("POST", f"/meetups/{meetup_id}/registrations", payload,
                                         {"Content-Type": "application/json"})
                response = local.connection.getresponse()
                status, raw = response.status, response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed a kept-alive connection that sat idle (before reading this
                # request): once more on a new connection, as HTTP clients do.
                local.connection.close()
                local.connection = None
                if not reused:
                    break
            except (OSError, http.client.HTTPException):
                local.connection.close()
                local.connection = None
                break
        elapsed = time.perf_counter() - started
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        results.append(Answer(n, meetup_id, status, elapsed, body.get("registration") or {},
                              body.get("error"), time.perf_counter()))

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - started, results


def list_registrations(base: str, admin: str, meetup_id: str) -> list[dict]:
    """Every registration of the meetup from the admin listing, page by page (read from the database)."""
    headers = {"Authorization": f"Bearer {admin}"}
    found, cursor = [], None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        response = requests.get(f"{base}/admin/meetups/{meetup_id}/registrations", params=params,
                                headers=headers, timeout=60)
        response.raise_for_status()
        page = response.json()
        found += page["registrations"]
        cursor = page.get("next_cursor")
        if not cursor:
            return found


MAIL_POSITION = (re.compile(r"Je staat op nummer (\d+) van de wachtlijst"), re.compile(r"You are number (\d+) \("))
MAIL_FIRST = ("Je bent de eerstvolgende", "You are next in line")


def read_rush_mail(mail_dir: Path, tag: str) -> dict[str, list[dict]]:
    """{address: [{"kind", "position"}]} of the delivered mails (the file backend's .eml files) of this rush."""
    marker = f"rush-{tag}-".encode()
    parser = BytesParser(policy=policy.default)
    found: dict[str, list[dict]] = defaultdict(list)
    for file in _mail_files(mail_dir):
        raw = file.read_bytes()
        if marker not in raw:
            continue
        message = parser.parsebytes(raw.replace(b"\r\n", b"\n"))
        text = message.get_body(("plain",)).get_content()
        subject = str(message["Subject"])
        kind = "waitlisted" if ("wachtlijst" in subject or "waiting list" in subject) else "other"
        position = None
        if kind == "waitlisted":
            if any(first in text for first in MAIL_FIRST):
                position = 1
            for pattern in MAIL_POSITION:
                match = pattern.search(text)
                if match:
                    position = int(match.group(1))
        found[str(message["To"]).strip().lower()].append({"kind": kind, "position": position})
    return found


def _mail_files(mail_dir: Path) -> list[Path]:
    """The delivered .eml files (not a file the backend is still writing: `.tmp-*`)."""
    return sorted(f for f in mail_dir.glob("*.eml") if not f.name.startswith(".")) if mail_dir.is_dir() else []


def wait_for_mail(mail_dir: Path, tag: str, expected: int, timeout: float) -> tuple[dict, float]:
    """The rush's delivered mail once `expected` messages are there (or at the timeout), and how long it took."""
    marker = f"rush-{tag}-".encode()
    started = time.monotonic()
    seen: dict[str, bool] = {}
    while time.monotonic() - started < timeout:
        for file in _mail_files(mail_dir):
            if file.name not in seen:
                seen[file.name] = marker in file.read_bytes()
        if sum(seen.values()) >= expected:
            break
        time.sleep(1)
    return read_rush_mail(mail_dir, tag), time.monotonic() - started


def check_rush(base: str, admin: str, meetup_ids: list[str], results: list[Answer], mail: dict,
               capacity: int) -> dict:
    """Per meetup: the roster as the database holds it after the rush against what each person was
    told (the HTTP answer: the position committed with the join) and emailed (composed at send time)."""
    told = {r.registration["id"]: r.registration for r in results if r.registration.get("id")}
    summary = {}
    for meetup_id in meetup_ids:
        regs = list_registrations(base, admin, meetup_id)
        asked = [r for r in results if r.meetup_id == meetup_id]
        confirmed = [r for r in regs if r["status"] == "confirmed"]
        waiting = sorted((r for r in regs if r["status"] == "waitlisted"), key=lambda r: r["waitlist_position"] or 0)
        positions = [r["waitlist_position"] for r in waiting]
        told_here = {rid for rid, r in told.items() if r.get("meetup_id") == meetup_id}
        listed_ids = {r["id"] for r in regs}
        mail_wrong, mail_missing, mail_twice = [], [], []
        for r in regs:
            got = mail.get(r["email"].lower(), [])
            if not got:
                mail_missing.append(r["id"])
                continue
            if len(got) > 1:
                mail_twice.append(r["id"])
            want = ("waitlisted", r["waitlist_position"]) if r["status"] == "waitlisted" else ("other", None)
            if any((m["kind"], m["position"]) != want for m in got):
                mail_wrong.append({"id": r["id"], "stored": r["waitlist_position"],
                                   "mailed": [m["position"] for m in got]})
        # No refusal while a seat or the waitlist was open: with an unlimited waitlist, every
        # sign-up must end confirmed or waitlisted.
        refused = [{"n": r.n, "status": r.status, "error": r.error} for r in asked
                   if r.status != 201 or r.registration.get("status") not in ("confirmed", "waitlisted")]
        summary[meetup_id] = {
            "asked": len(asked), "confirmed": len(confirmed), "waitlisted": len(waiting),
            "expected": {"confirmed": min(capacity, len(asked)), "waitlisted": max(0, len(asked) - capacity)},
            "statuses": dict(Counter(r["status"] for r in regs)),
            "refused": len(refused), "refused_examples": refused[:5],
            "refusals_by_error": dict(Counter(str(r["error"]) for r in refused)),
            "told_but_not_listed": sorted(told_here - listed_ids)[:5],
            "listed_but_not_told": sorted(listed_ids - told_here)[:5],
            "positions_are_1_to_n": positions == list(range(1, len(waiting) + 1)),
            "told_position_matches_stored": all(r["id"] in told and told[r["id"]]["waitlist_position"]
                                                == r["waitlist_position"] for r in waiting),
            "mail_missing": len(mail_missing), "mail_twice": len(mail_twice),
            "mail_position_wrong": len(mail_wrong), "mail_position_wrong_examples": mail_wrong[:5],
        }
        summary[meetup_id]["ok"] = check_ok(summary[meetup_id])
    return summary


def check_ok(c: dict) -> bool:
    return (c["confirmed"] == c["expected"]["confirmed"] and c["waitlisted"] == c["expected"]["waitlisted"]
            and c["refused"] == 0 and c["positions_are_1_to_n"] and c["told_position_matches_stored"]
            and not c["told_but_not_listed"] and not c["listed_but_not_told"]
            and c["mail_missing"] == 0 and c["mail_twice"] == 0 and c["mail_position_wrong"] == 0)


def part_http(args, processes: int) -> dict:
    admin = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="klassen-bench-") as tmp:
        data_dir = Path(tmp)
        ddb, store = start_store(data_dir)
        services = []
        try:
            services = start_services(processes, admin, data_dir, ddb.endpoint)
            ports = [port for _, port in services]
            base = f"http://127.0.0.1:{ports[0]}"
            headers = {"Authorization": f"Bearer {admin}"}

            def create(title, days):
                response = requests.post(f"{base}/admin/meetups", json=session_payload(days, title), headers=headers)
                response.raise_for_status()
                return response.json()["id"]
            tag = secrets.token_hex(3)
            if args.warmup:
                warm = create("Warm-up", 100)
                rush(ports, [warm], args.warmup, args.clients, "warm" + tag)
                # The warm-up's mail goes out before the measured rush starts (else the
                # deliverers' flush of it would land inside the rush, and not be its work).
                wait_for_mail(data_dir / "mail", "warm" + tag, args.warmup, args.mail_timeout)
            sessions = [create("Extra online meetup 12 april", 140), create("Extra online meetup 19 april", 147)]
            elapsed, results = rush(ports, sessions, args.signups, args.clients, tag)
            mail, mail_wait = wait_for_mail(data_dir / "mail", tag, args.signups, args.mail_timeout)
            checks = check_rush(base, admin, sessions, results, mail, CAPACITY)
        finally:
            stop_services(services)
            ddb.stop()
            store.close()
    latencies = [r.seconds for r in results]
    throughput = len(results) / elapsed
    first_end = min(r.at for r in results)
    return {
        "processes": processes, "signups": len(results), "clients": args.clients, "warmup": args.warmup,
        "seconds": round(elapsed, 2), "throughput_per_s": round(throughput, 1),
        "p50_s": round(percentile(latencies, 0.50), 3), "p99_s": round(percentile(latencies, 0.99), 3),
        "max_s": round(max(latencies), 3), "http_statuses": dict(Counter(r.status for r in results)),
        # Where the tail is: seats (no race) or the line (one ticket at a time per meetup).
        "p99_by_outcome_s": {status: round(percentile([r.seconds for r in results
                                                        if r.registration.get("status") == status], 0.99), 3)
                             for status in ("confirmed", "waitlisted")
                             if any(r.registration.get("status") == status for r in results)},
        "slowest": [{"s": round(r.seconds, 3), "ended_after_s": round(r.at - first_end, 2),
                     "status": r.registration.get("status"), "position": r.registration.get("waitlist_position")}
                    for r in sorted(results, key=lambda r: -r.seconds)[:15]],
        "outcomes": dict(Counter(r.registration.get("status") for r in results)),
        "mail_seconds_after_rush": round(mail_wait, 1), "checks": checks,
        "ok": all(c["ok"] for c in checks.values()),
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
            "transactions_per_signup": round(path["TransactWriteItems"] / signups, 2),
            "read_units_per_signup": round(path["read_units"] / signups, 2),
            "requests_by_operation": {k: v for k, v in path.items() if k not in ("requests", "read_units")},
            "requests_per_signup_by_outcome": {
                status: {"median": statistics.median(v), "mean": round(sum(v) / len(v), 2), "max": max(v)}
                for status, v in per_status.items()},
        }
    finally:
        ddb.stop()


def median_of(runs: list[dict], processes: int) -> dict:
    """The run of median throughput, with the medians of the runs' figures."""
    median_run = sorted(runs, key=lambda r: r["throughput_per_s"])[len(runs) // 2]
    return dict(median_run, **{
        "processes": processes, "runs": len(runs),
        "throughput_per_s": statistics.median(r["throughput_per_s"] for r in runs),
        "p50_s": statistics.median(r["p50_s"] for r in runs),
        "p99_s": statistics.median(r["p99_s"] for r in runs),
        "runs_throughput_per_s": [r["throughput_per_s"] for r in runs],
        "runs_p99_s": [r["p99_s"] for r in runs],
        "ok": all(r["ok"] for r in runs),
    })


def figures(http: dict, floor: dict | None) -> dict:
    """What the README reports of one process count: against the floor and against pretix."""
    floor_tx = floor["tx_per_s"] if floor else None
    ratio = round(http["throughput_per_s"] / floor_tx, 2) if floor_tx else None
    return {"processes": http["processes"], "signups_per_s": http["throughput_per_s"],
            "p50_s": http["p50_s"], "p99_s": http["p99_s"], "floor_tx_per_s": floor_tx, "ratio_to_floor": ratio,
            "meets_ratio_target": ratio is not None and ratio >= TARGET["ratio_to_floor"],
            "meets_p99_target": http["p99_s"] < TARGET["p99_s"],
            "vs_pretix": {"throughput_ratio": round(http["throughput_per_s"] / PRETIX["throughput"], 2),
                          "p99_ratio": round(http["p99_s"] / PRETIX["p99"], 2)},
            "checks_ok": http["ok"]}


def process_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or any(count < 1 for count in counts):
        raise argparse.ArgumentTypeError(f"a process count or a comma-separated list of them, not {text!r}")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=process_counts, default=[1],
                        help="app processes sharing the rush (round-robin); several, comma-separated: 1,4")
    parser.add_argument("--signups", type=int, default=1800)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3, help="rushes over HTTP, each on a fresh service; medians reported")
    parser.add_argument("--mail-timeout", type=float, default=180, help="seconds to wait for the rush's mail")
    parser.add_argument("--floor-repeat", type=int, default=3, help="runs of the store's floor (bench.ddb_floor)")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--skip-requests", action="store_true", help="no in-process count of DynamoDB requests")
    args = parser.parse_args(argv)
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "pretix": PRETIX, "target": TARGET}
    ok = True
    # Rounds: one rush for each process count, then one run of the store's own floor for the
    # same work (bench.ddb_floor): the machine's load varies, so each round measures both.
    by_processes: dict[int, list[dict]] = {count: [] for count in ([] if args.skip_http else args.processes)}
    floor_runs: list[dict] = []
    rounds = max(0 if args.skip_http else args.runs, 0 if args.skip_floor else args.floor_repeat)
    for number in range(1, rounds + 1):
        for processes, runs in by_processes.items():
            if number > args.runs:
                continue
            runs.append(part_http(args, processes))
            run = runs[-1]
            print(f"round {number}, {processes} process(es): {run['throughput_per_s']}/s, p50 {run['p50_s']} s, "
                  f"p99 {run['p99_s']} s, mail {run['mail_seconds_after_rush']} s after; "
                  f"checks {'ok' if run['ok'] else 'FAILED'}", flush=True)
            if not run["ok"]:
                print(json.dumps(run["checks"], indent=2), flush=True)
            ok = ok and run["ok"]
        if not args.skip_floor and number <= args.floor_repeat:
            floor_runs += ddb_floor.measure(args.signups, args.clients, 1)["runs"]
            print(f"round {number}, floor: {floor_runs[-1]['tx_per_s']} tx/s", flush=True)
    if floor_runs:
        report["floor"] = {"requests": args.signups, "threads": args.clients, "runs": floor_runs,
                           "tx_per_s": statistics.median(r["tx_per_s"] for r in floor_runs)}
    if by_processes:
        report["http_by_processes"] = {str(count): dict(median_of(runs, count), http_runs=runs)
                                       for count, runs in by_processes.items()}
        if "1" in report["http_by_processes"]:
            report["http"] = report["http_by_processes"]["1"]  # as before there were process counts
        report["summary"] = [figures(http, report.get("floor")) for http in report["http_by_processes"].values()]
    if not args.skip_requests:
        report["requests"] = part_requests(args)
        print(json.dumps(report["requests"], indent=2), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "signup.json").write_text(json.dumps(report, indent=2))
    print()
    for row in report.get("summary", []):
        ratio = "" if row["ratio_to_floor"] is None else (
            f", floor {row['floor_tx_per_s']} tx/s, ratio {row['ratio_to_floor']} "
            f"({'meets' if row['meets_ratio_target'] else 'below'} target {TARGET['ratio_to_floor']})")
        print(f"{row['processes']} process(es), median of {args.runs}: {row['signups_per_s']} sign-ups/s, "
              f"p50 {row['p50_s']} s, p99 {row['p99_s']} s "
              f"({'meets' if row['meets_p99_target'] else 'misses'} target < {TARGET['p99_s']} s){ratio}; "
              f"{row['vs_pretix']['throughput_ratio']}x pretix; checks {'ok' if row['checks_ok'] else 'FAILED'}")
    if "requests" in report:
        print(f"{report['requests']['dynamodb_requests_per_signup']} DynamoDB requests and "
              f"{report['requests']['transactions_per_signup']} transactions per sign-up")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
