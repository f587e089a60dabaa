"""Digest run: its cost grows with the changes since the last run, not with the data.

    python -m bench.digest [--registrations 20000] [--organisers 100] [--changes 500 5000]

Starts its own DynamoDB Local (in memory) and creates the tables from infra/ under a fresh
prefix. Seeds a tour of 48 meetups (four per province) and `--registrations` registrations
over it, each with the activity record a sign-up writes (made by the roster's own
`registration._activity`, so the items are exactly the real ones), spread over the 30 days
BEFORE the last run; then 100 organisers (scopes: the whole tour, a province, a meetup; daily
and weekly), all of them due, whose last digest covered up to that last run.

For each number of changes (500, then 5,000; the same base data, the organisers reset to "last
run" before each): writes that many roster changes after the last run (sign-ups, waitlist
joins, cancellations, promotions and a few handovers, as activity records with their
registrations), runs `digest.run(now=..., backend=<a null backend that only counts>)` and
measures its wall time and the DynamoDB read units it consumed (ReturnConsumedCapacity=TOTAL
through botocore event hooks on the models' clients), per table. Prints both and the ratio of
the read units (target: about 10x for 10x the changes; nothing read from the registrations), and
writes the figures as JSON to bench/results/.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools import dynamodb_local, tables  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# The run: Monday 12 April 2027, 07:30 in Amsterdam (both daily and weekly digests are due).
RUN_AT = "2027-04-12T07:30:00+02:00"
# The last run, after which the organisers' changes start; the older data lies before it.
LAST_RUN_AT = "2027-04-11T11:30:00+02:00"
HISTORY_DAYS = 30
MEETUPS_PER_PROVINCE = 4
ROLES = ("teacher", "school_leader", "school_board", "local_politician", "education_support", "youth_work",
         "parent", "other")
TARGET_RATIO = 10.0


class NullBackend:
    """Counts messages; sends and writes nothing, so the mail part does not dominate the run."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()

    def send(self, message) -> None:
        with self._lock:
            self.count += 1


class Meter:
    """DynamoDB requests and consumed capacity, per operation and table, via botocore events."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.requests: Counter = Counter()
        self.read_units: defaultdict = defaultdict(float)
        self.write_units: defaultdict = defaultdict(float)

    def install(self, clients) -> None:
        for client in {id(c): c for c in clients}.values():
            client.meta.events.register("before-parameter-build.dynamodb.*", self._before)
            client.meta.events.register("after-call.dynamodb.*", self._after)

    @staticmethod
    def _before(params, **_):
        params["ReturnConsumedCapacity"] = "TOTAL"

    def _after(self, http_response, parsed, model, **_):
        self.requests[model.name] += 1
        consumed = parsed.get("ConsumedCapacity")
        reads = model.name in ("GetItem", "Query", "Scan", "BatchGetItem")
        for item in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
            table = item.get("TableName", "?").rsplit("-", 1)[-1]
            units = item.get("CapacityUnits", 0) or 0
            if reads:
                self.read_units[table] += item.get("ReadCapacityUnits", units) or units
            else:
                self.write_units[table] += item.get("WriteCapacityUnits", units) or units

    def summary(self) -> dict:
        return {"requests": dict(self.requests), "read_units": round(sum(self.read_units.values()), 1),
                "read_units_by_table": {k: round(v, 1) for k, v in sorted(self.read_units.items())},
                "write_units": round(sum(self.write_units.values()), 1)}


def _git_commit() -> str | None:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() or None


def _parallel(function, chunks, workers: int = 8) -> None:
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(function, chunks):
            pass


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class Tour:
    """The seeded data and the writers of registrations and activity (batch writes)."""

    def __init__(self, rng: random.Random):
        from chalicelib import catalogue, clock
        self.rng = rng
        self.clock = clock
        # In UTC, as the services' clock gives it (activity day partitions are UTC days).
        self.run_at = datetime.fromisoformat(RUN_AT).astimezone(timezone.utc)
        self.last_run = datetime.fromisoformat(LAST_RUN_AT).astimezone(timezone.utc)
        self.meetups = []
        for p, province in enumerate(catalogue.PROVINCES):
            for n in range(MEETUPS_PER_PROVINCE):
                starts = self.run_at + timedelta(days=7 + 3 * (p * MEETUPS_PER_PROVINCE + n), hours=10)
                self.meetups.append(catalogue.create_meetup({
                    "title": f"Klassen Meetup {province} {n + 1}", "kind": "regional", "province": province,
                    "city": f"Stad {p}-{n}", "host": {"name": f"Gemeente {p}-{n}"}, "mode": "in_person",
                    "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=2)).isoformat(),
                    "capacity": 1000, "waitlist": {"enabled": True}}))
        self.confirmed: dict[str, list] = {m.id: [] for m in self.meetups}  # registrations, per meetup
        self.waiting: dict[str, list] = {m.id: [] for m in self.meetups}
        self.serial = 0

    def _registration(self, meetup, at: datetime, status: str):
        from chalicelib.models import REGISTRATION_PREFIX, Registration
        self.serial += 1
        rid = secrets.token_urlsafe(12)
        stamp = self.clock.to_storage(at)
        return Registration(
            meetup_id=meetup.id, sk=REGISTRATION_PREFIX + rid, id=rid, status=status,
            name=f"Deelnemer {self.serial}", email=f"bench-{self.serial}@school.example.nl",
            role=self.rng.choice(ROLES), organisation=f"School {self.serial % 700}", municipality=None, theme=None,
            language="nl", created_at=stamp, updated_at=stamp)

    def write(self, items_by_model: dict) -> None:
        """Batch writes, in parallel: `{Model: [items]}`."""
        for model, items in items_by_model.items():
            def save(chunk, model=model):
                with model.batch_write() as batch:
                    for item in chunk:
                        batch.save(item)
            _parallel(save, _chunks(items, 25 * 8))

    def history(self, count: int) -> None:
        """`count` confirmed sign-ups spread over the HISTORY_DAYS before the last run."""
        from chalicelib import registration
        from chalicelib.models import Activity, Registration
        regs, activity = [], []
        span = HISTORY_DAYS * 24 * 3600
        for _ in range(count):
            meetup = self.rng.choice(self.meetups)
            at = self.last_run - timedelta(seconds=self.rng.uniform(1, span))
            reg = self._registration(meetup, at, "confirmed")
            self.confirmed[meetup.id].append(reg)
            regs.append(reg)
            activity.append(registration._activity("signed_up", meetup, reg, at))
        self.write({Registration: regs, Activity: activity})
        self._store_counts()

    def changes(self, count: int) -> Counter:
        """`count` roster changes between the last run and the run (minus the digest's settle time)."""
        from chalicelib import registration
        from chalicelib.config import get_settings
        from chalicelib.models import Activity, Registration, activity_keys
        regs, activity, kinds = [], [], Counter()
        start = self.last_run + timedelta(seconds=1)
        span = (self.run_at - timedelta(minutes=5) - start).total_seconds()
        moments = sorted(start + timedelta(seconds=self.rng.uniform(0, span)) for _ in range(count))
        for n, at in enumerate(moments):
            meetup = self.rng.choice(self.meetups)
            roll = self.rng.random()
            if n % 250 == 249:  # a few handovers, shaped as the handover writes them
                target = self.rng.choice(self.meetups)
                activity.append(Activity(
                    **activity_keys(at.astimezone(timezone.utc)), type="handover", meetup_id=meetup.id,
                    province=meetup.province,
                    details={"from_meetup_id": meetup.id, "to_meetup_id": target.id, "from_city": meetup.city,
                             "to_city": target.city, "handover_id": secrets.token_hex(6)},
                    expires_at=at + get_settings().retention))
                kinds["handover"] += 1
            elif roll < 0.65 or not self.confirmed[meetup.id]:
                reg = self._registration(meetup, at, "confirmed")
                self.confirmed[meetup.id].append(reg)
                regs.append(reg)
                activity.append(registration._activity("signed_up", meetup, reg, at))
                kinds["signed_up"] += 1
            elif roll < 0.75:
                reg = self._registration(meetup, at, "waitlisted")
                self.waiting[meetup.id].append(reg)
                regs.append(reg)
                activity.append(registration._activity("waitlisted", meetup, reg, at))
                kinds["waitlisted"] += 1
            else:
                leaving = self.confirmed[meetup.id].pop(self.rng.randrange(len(self.confirmed[meetup.id])))
                leaving.status = "cancelled"
                leaving.cancelled_at = self.clock.to_storage(at)
                regs.append(leaving)
                activity.append(registration._activity("cancelled", meetup, leaving, at, was="confirmed"))
                kinds["cancelled"] += 1
                if self.waiting[meetup.id]:
                    promoted = self.waiting[meetup.id].pop(0)
                    promoted.status = "confirmed"
                    promoted.promoted_at = self.clock.to_storage(at)
                    self.confirmed[meetup.id].append(promoted)
                    regs.append(promoted)
                    activity.append(registration._activity("promoted", meetup, promoted, at))
                    kinds["promoted"] += 1
        # A registration changed twice is written once, as it ends up.
        self.write({Registration: list({r.id: r for r in regs}.values()), Activity: activity})
        self._store_counts()
        return kinds

    def _store_counts(self) -> None:
        from chalicelib.models import Meetup
        for meetup in self.meetups:
            meetup.update(actions=[Meetup.confirmed.set(len(self.confirmed[meetup.id])),
                                   Meetup.waitlist_length.set(len(self.waiting[meetup.id]))])


def organiser_payloads(tour: Tour, count: int, rng: random.Random) -> list[dict]:
    from chalicelib import catalogue
    payloads = []
    for n in range(count):
        kind = ("all", "province", "province", "meetup", "meetup")[n % 5] if n % 10 else "all"
        if kind == "province":
            scope = {"province": catalogue.PROVINCES[n % len(catalogue.PROVINCES)]}
        elif kind == "meetup":
            scope = {"meetup_id": tour.meetups[(n * 7) % len(tour.meetups)].id}
        else:
            scope = "all"
        payloads.append({"email": f"organiser-{n}@gemeente.example.nl", "name": f"Organisator {n}", "scope": scope,
                         "frequency": "weekly" if n % 3 == 0 else "daily",
                         "language": "en" if n % 4 == 0 else "nl"})
    return payloads


def reset_organisers(payloads: list[dict], at: datetime) -> None:
    """Every organiser as right after the last run: covered up to it, due now."""
    from chalicelib import digest
    for organiser in digest.list_organisers():
        organiser.delete()
    for payload in payloads:
        digest.subscribe(payload, now=at)


def measure(tour: Tour, meter: Meter, payloads: list[dict], changes: int, already: int) -> dict:
    from chalicelib import digest
    reset_organisers(payloads, tour.last_run)
    kinds = tour.changes(changes - already)
    backend = NullBackend()
    meter.reset()
    started = time.perf_counter()
    result = digest.run(now=tour.run_at, backend=backend, time_budget=3600)
    wall = time.perf_counter() - started
    usage = meter.summary()
    return {"changes": changes, "changes_written_now": dict(kinds), "result": result, "messages": backend.count,
            "wall_seconds": round(wall, 3), **usage}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.digest", description=__doc__.split("\n")[0])
    parser.add_argument("--registrations", type=int, default=20000, help="older registrations (default 20000)")
    parser.add_argument("--organisers", type=int, default=100, help="organisers, all due (default 100)")
    parser.add_argument("--changes", type=int, nargs="+", default=[500, 5000],
                        help="changes since the last run, ascending (default: 500 5000)")
    parser.add_argument("--seed", type=int, default=20270412)
    args = parser.parse_args(argv)
    changes = sorted(args.changes)

    work = Path(tempfile.mkdtemp(prefix="klassen-digest-bench-"))
    ddb = dynamodb_local.start(log_path=work / "dynamodb.log")
    try:
        prefix = f"bench-{secrets.token_hex(4)}-"
        os.environ.update(dynamodb_local.local_aws_environment(ddb.endpoint))
        os.environ.update({"STAGE": "local", "TABLE_PREFIX": prefix, "MAIL_BACKEND": "file",
                           "MAIL_DIR": str(work / "mail"), "SIGNING_SECRET": "bench",
                           "PUBLIC_BASE_URL": "https://meetups.example.nl", "POWERTOOLS_LOG_LEVEL": "ERROR"})
        tables.create_tables(prefix)
        from chalicelib.models import ALL_MODELS

        rng = random.Random(args.seed)
        seeding = time.perf_counter()
        tour = Tour(rng)
        tour.history(args.registrations)
        payloads = organiser_payloads(tour, args.organisers, rng)
        print(f"Seeded {len(tour.meetups)} meetups, {args.registrations:,} registrations with their activity "
              f"over the {HISTORY_DAYS} days before the last run, and {args.organisers} organisers "
              f"in {time.perf_counter() - seeding:.0f} s", flush=True)

        meter = Meter()
        meter.install([model._get_connection().connection.client for model in ALL_MODELS])
        runs, written = [], 0
        for count in changes:
            measured = measure(tour, meter, payloads, count, written)
            written = count
            runs.append(measured)
            print(f"{count:>6,} changes: {measured['wall_seconds']:6.2f} s, {measured['read_units']:7.1f} read units "
                  f"{measured['read_units_by_table']}, {measured['messages']} digests "
                  f"(sent {measured['result']['sent']}, skipped {measured['result']['skipped']}), "
                  f"requests {measured['requests']}", flush=True)

        ratio = runs[-1]["read_units"] / runs[0]["read_units"] if runs[0]["read_units"] else None
        change_ratio = changes[-1] / changes[0]
        registrations_read = sum(r["read_units_by_table"].get("registrations", 0) for r in runs)
        print(f"Read units for {changes[-1]:,} vs {changes[0]:,} changes ({change_ratio:.0f}x): "
              f"{ratio:.1f}x (target about {change_ratio:.0f}x, not growing with the {args.registrations:,} "
              f"registrations; read from registrations: {registrations_read:g} units)")
        print(f"Wall time: {runs[-1]['wall_seconds'] / runs[0]['wall_seconds']:.1f}x")

        result = {"benchmark": "digest", "registrations": args.registrations, "organisers": args.organisers,
                  "meetups": len(tour.meetups), "run_at": RUN_AT, "last_run_at": LAST_RUN_AT, "runs": runs,
                  "read_unit_ratio": ratio, "change_ratio": change_ratio, "target_ratio": TARGET_RATIO,
                  "python": platform.python_version(), "machine": platform.machine(), "commit": _git_commit(),
                  "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = RESULTS / f"digest-{stamp}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "digest-latest.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"Results: {out.relative_to(ROOT)}")
        return 0 if registrations_read == 0 else 1
    finally:
        ddb.stop()


if __name__ == "__main__":
    sys.exit(main())
