"""What the roster's writes cost on real DynamoDB, and the ceilings that follow, computed from
the items the service really writes (measured against DynamoDB Local, sized as DynamoDB sizes
items) under DynamoDB's billing and partition rules, not from DynamoDB Local's own accounting.

For each operation (a sign-up that gets a seat, one that waits, a waiting person's cancellation,
a confirmed person's cancellation that promotes the next in line) the script records every item
of the transaction: its table, its partition key, its size before and after, and the index
entries it adds, changes or removes. Then, per DynamoDB's rules:

- a transactional write costs 2 write units per started KB of the larger of the item's sizes
  before and after; an index entry written, changed or removed costs 1 unit per started KB
  (2 when its key changes: a delete and a put);
- one partition key takes at most 1,000 write units per second (tables and indexes alike).

"Per meetup" is the ceiling of one meetup's hottest key; "national" the ceiling of the hottest
key that every meetup shares (sharded keys count as their shards together, evenly used).
"Before" maps the same measured writes onto the layout as it was before issue 9 (the line as one
list item of ~20 bytes per waiting person in the meetup's partition with the guards, one activity
key per day, one `due` key for the outbox, the whole meetup copied into the tour index at every
counter change, queued links whole in spaced JSON).

    python -m bench.scaling [--write]      # --write: put the table into docs/scaling.md
"""
from __future__ import annotations

import argparse
import base64
import json
import math
import os
import secrets
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "scaling.md"
BEGIN, END = "<!-- scaling:begin (bench/scaling.py --write) -->", "<!-- scaling:end -->"
KB = 1024
PARTITION_WRITE_UNITS = 1000
LINE_BYTES_PER_PERSON = 20  # the old one-item line: about 20 bytes per registration id in its list
BEFORE_LINE_LENGTHS = (0, 1_000, 10_000)


# --- DynamoDB's item size ------------------------------------------------------------------------

def value_size(value: dict) -> int:
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = inner.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(base64.b64decode(inner)) if isinstance(inner, str) else len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in inner)
    raise ValueError(kind)


def item_size(item: dict | None) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def units(size: int, per_kb: int) -> int:
    return per_kb * max(1, math.ceil(size / KB))


# --- recording what a call writes ----------------------------------------------------------------

@dataclass
class Write:
    table: str  # the table's suffix, e.g. "registrations"
    key: dict
    before: dict | None
    after: dict | None

    def hash_value(self, schema: dict) -> str:
        return next(iter(self.key[schema["hash"]].values()))


@dataclass
class Operation:
    name: str
    writes: list[Write] = field(default_factory=list)


class Recorder:
    """Reads each written item before and after the TransactWriteItems call (consistently)."""

    def __init__(self, client, prefix: str, schemas: dict):
        self.client, self.prefix, self.schemas = client, prefix, schemas
        self.current: Operation | None = None
        self.pending: list = []
        client.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", self._before)
        client.meta.events.register("after-call.dynamodb.TransactWriteItems", self._after)

    def _get(self, table: str, key: dict) -> dict | None:
        return self.client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    def _before(self, params, **_):
        if self.current is None:
            return
        self.pending = []
        for part in params["TransactItems"]:
            (kind, body), = part.items()
            if kind == "ConditionCheck":
                continue
            table = body["TableName"]
            schema = self.schemas[table.removeprefix(self.prefix)]
            source = body.get("Item") or body.get("Key")
            key = {name: source[name] for name in (schema["hash"], schema.get("range")) if name}
            self.pending.append((table, key, self._get(table, key)))

    def _after(self, http_response, parsed, **_):
        if self.current is None or http_response.status_code != 200:
            return
        for table, key, before in self.pending:
            self.current.writes.append(Write(table.removeprefix(self.prefix), key, before, self._get(table, key)))
        self.pending = []

    def measure(self, name: str, call) -> Operation:
        self.current = Operation(name)
        try:
            call()
            return self.current
        finally:
            self.current = None


def table_schemas() -> dict:
    """{suffix: {"hash", "range", "indexes": [{"name", "hash", "range", "projection"}]}} from infra."""
    from devtools import tables
    schemas = {}
    for suffix, props in tables.table_definitions().items():
        keys = {k["KeyType"]: k["AttributeName"] for k in props["KeySchema"]}
        indexes = [{"name": i["IndexName"],
                    **{{"HASH": "hash", "RANGE": "range"}[k["KeyType"]]: k["AttributeName"] for k in i["KeySchema"]},
                    "projection": i["Projection"]["ProjectionType"]}
                   for i in props.get("GlobalSecondaryIndexes", [])]
        schemas[suffix] = {"hash": keys["HASH"], "range": keys.get("RANGE"), "indexes": indexes}
    return schemas


# --- the keys, and who shares them ----------------------------------------------------------------

def key_class(table: str, index: str | None, value: str, meetup_id: str) -> tuple[str, int]:
    """(what the key is, how many keys of that kind share the load): "meetup ..." keys belong to
    one meetup; "national ..." keys are shared by all meetups, spread over `shards` keys."""
    from chalicelib.models import ACTIVITY_SHARDS, OUTBOX_DUE_SHARDS, guard_partition, line_partition
    if index is None:
        if table == "meetups":
            return "meetup: its item", 1
        if table == "registrations":
            if value == line_partition(meetup_id):
                return "meetup: its line (W#, D#)", 1
            if value == guard_partition(meetup_id):
                return "meetup: its address guards (E#)", 1
            if value == meetup_id:
                return "meetup: its registrations (R#, T#)", 1
        if table == "activity":
            return "national: activity of the day", ACTIVITY_SHARDS
        if table == "outbox":
            return "per message", 0
    else:
        if index == "by_due":
            return "national: outbox due index", OUTBOX_DUE_SHARDS
        if index == "by_start":
            return "national: tour index", 1
        if index == "by_erasure":
            return "national: erasure index", 1
        if index in ("by_email", "by_recipient"):
            return "per person", 0
    return f"other: {table} {index or ''}", 1


@dataclass
class Cost:
    total: float = 0.0
    by_key: dict = field(default_factory=dict)  # (class, shards) -> units into one key of that class

    def add(self, klass: tuple[str, int], amount: float) -> None:
        self.total += amount
        self.by_key[klass] = self.by_key.get(klass, 0.0) + amount


def _index_entry(item: dict | None, index: dict) -> dict | None:
    if not item or index["hash"] not in item or (index.get("range") and index["range"] not in item):
        return None
    return item


def cost_after(op: Operation, schemas: dict, meetup_id: str) -> Cost:
    """The operation on today's layout."""
    cost = Cost()
    for w in op.writes:
        schema = schemas[w.table]
        cost.add(key_class(w.table, None, w.hash_value(schema), meetup_id),
                 units(max(item_size(w.before), item_size(w.after)), 2))
        for index in schema["indexes"]:
            old, new = _index_entry(w.before, index), _index_entry(w.after, index)
            if old is None and new is None:
                continue
            keys = [index["hash"], index.get("range")]
            changed_key = old is not None and new is not None and any(old.get(k) != new.get(k) for k in keys if k)
            projected_changed = index["projection"] == "ALL" and old != new
            if old is not None and new is not None and not changed_key and not projected_changed:
                continue
            entry_units = (2 if changed_key else 1) * units(
                item_size(new or old) if index["projection"] == "ALL" else 100, 1)
            value = next(iter((new or old)[index["hash"]].values()))
            cost.add(key_class(w.table, index["name"], value, meetup_id), entry_units)
    return cost


def cost_before(op: Operation, schemas: dict, meetup_id: str, line_length: int) -> Cost:
    """The same writes on the layout before issue 9."""
    from chalicelib import mail
    cost = Cost()
    line_touched = False
    for w in op.writes:
        schema = schemas[w.table]
        size = max(item_size(w.before), item_size(w.after))
        value = w.hash_value(schema)
        if w.table == "registrations" and value != meetup_id:
            sk = next(iter(w.key["sk"].values()))
            if sk.startswith(("W#", "D#")):  # then: one list item per meetup, holding the whole line
                line_touched = True
                continue
            cost.add(("meetup: its registrations, guards and line", 1), units(size, 2))
            continue
        if w.table == "registrations":
            cost.add(("meetup: its registrations, guards and line", 1), units(size, 2))
        elif w.table == "meetups":
            cost.add(("meetup: its item", 1), units(size, 2))
            cost.add(("national: tour index", 1), units(item_size(w.after), 1))  # projected ALL
        elif w.table == "activity":
            cost.add(("national: activity of the day", 1), units(size, 2))
        elif w.table == "outbox":
            item = dict(w.after or w.before)
            if "context" in item:  # then: links whole, JSON with spaces and \\u escapes
                context = mail.absolute_links(json.loads(item["context"]["S"]))
                item["context"] = {"S": json.dumps(context)}
            cost.add(("per message", 0), units(item_size(item), 2))
            if (w.after or {}).get("due"):
                cost.add(("national: outbox due index", 1), 1)
            if (w.after or {}).get("recipient_hash"):
                cost.add(("per person", 0), 1)
        if w.table == "registrations":
            for index in schema["indexes"]:
                old, new = _index_entry(w.before, index), _index_entry(w.after, index)
                if (old is None) != (new is None):
                    label = "national: erasure index" if index["name"] == "by_erasure" else "per person"
                    cost.add((label, 1 if label.startswith("national") else 0), 1)
    if line_touched:
        cost.add(("meetup: its registrations, guards and line", 1),
                 units(100 + LINE_BYTES_PER_PERSON * line_length, 2))
    return cost


def ceilings(cost: Cost) -> tuple[float, float, str, str]:
    """(per meetup, national) operations per second, with the key that sets each."""
    meetup = [(PARTITION_WRITE_UNITS / u, k[0]) for k, u in cost.by_key.items() if k[0].startswith("meetup")]
    national = [(PARTITION_WRITE_UNITS * k[1] / u, k[0]) for k, u in cost.by_key.items() if k[0].startswith("national")]
    m = min(meetup) if meetup else (math.inf, "-")
    n = min(national) if national else (math.inf, "-")
    return m[0], n[0], m[1], n[1]


# --- the measurement ------------------------------------------------------------------------------

def measure() -> dict:
    """Runs the four operations against the configured DynamoDB (tables must exist)."""
    from bench.signup import person, session_payload
    from chalicelib import catalogue, registration
    from chalicelib.config import get_settings
    from chalicelib.models import Meetup
    client = Meetup._get_connection().connection.client
    schemas = table_schemas()
    recorder = Recorder(client, get_settings().table_prefix, schemas)
    meetup = catalogue.create_meetup(session_payload(60, "Extra online bijeenkomst Klassen: gelijke kansen")
                                     | {"capacity": 2})
    tag = secrets.token_hex(3)
    ops = [recorder.measure("sign-up, seat", lambda: registration.sign_up(meetup.id, person(1, tag)))]
    registration.sign_up(meetup.id, person(2, tag))
    waiting = {}
    ops.append(recorder.measure("sign-up, waitlist",
                                lambda: waiting.setdefault("r", registration.sign_up(meetup.id, person(3, tag)))))
    registration.sign_up(meetup.id, person(4, tag))
    ops.append(recorder.measure("cancellation, waiting",
                                lambda: registration.cancel_registration(waiting["r"].registration)))
    confirmed = next(r for r in registration.Registration.query(meetup.id, registration.Registration.sk.startswith("R#"))
                     if r.status == "confirmed")
    ops.append(recorder.measure("cancellation, seat (promotes the next)",
                                lambda: registration.cancel_registration(confirmed)))
    rows = []
    for op in ops:
        after = cost_after(op, schemas, meetup.id)
        a_meetup, a_national, a_mkey, a_nkey = ceilings(after)
        befores = []
        for length in BEFORE_LINE_LENGTHS:
            before = cost_before(op, schemas, meetup.id, length)
            befores.append({"waiting": length, "write_units": before.total, **dict(zip(
                ("per_meetup", "national", "per_meetup_key", "national_key"), ceilings(before)))})
        rows.append({"operation": op.name, "items": len(op.writes),
                     "after": {"write_units": after.total, "per_meetup": a_meetup, "national": a_national,
                               "per_meetup_key": a_mkey, "national_key": a_nkey,
                               "keys": {k[0]: u for k, u in after.by_key.items()}},
                     "before": befores})
    return {"meetup": meetup.id, "rows": rows}


def _n(value: float) -> str:
    return "no limit" if value == math.inf else f"{value:,.0f}"


def markdown(result: dict) -> str:
    lines = ["| operation | write units before (0 / 1,000 / 10,000 waiting) | after (any line) "
             "| per meetup before → after (/s) | nationally before → after (/s) |",
             "|---|---|---|---|---|"]
    for row in result["rows"]:
        before, after = row["before"], row["after"]
        lines.append(
            f"| {row['operation']} | {' / '.join(format(b['write_units'], 'g') for b in before)} "
            f"| {after['write_units']:g} "
            f"| {' / '.join(_n(b['per_meetup']) for b in before)} → **{_n(after['per_meetup'])}** "
            f"({after['per_meetup_key']}) "
            f"| {_n(before[0]['national'])} ({before[0]['national_key']}) → **{_n(after['national'])}** "
            f"({after['national_key']}) |")
    lines.append("")
    lines.append("Write units per key, after (one operation):")
    lines.append("")
    for row in result["rows"]:
        keys = ", ".join(f"{k} {u:g}" for k, u in sorted(row["after"]["keys"].items()))
        lines.append(f"- {row['operation']}: {keys}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="put the table into docs/scaling.md")
    args = parser.parse_args()
    from devtools import dynamodb_local
    ddb = dynamodb_local.start()
    os.environ.update(dynamodb_local.local_aws_environment(ddb.endpoint))
    os.environ.update({"STAGE": "local", "TABLE_PREFIX": f"sc-{secrets.token_hex(3)}-", "MAIL_DIR": tempfile.mkdtemp(),
                       "SIGNING_SECRET": "bench", "POWERTOOLS_LOG_LEVEL": "WARNING", "MAIL_DELIVERY": "stream"})
    try:
        from devtools import tables
        tables.create_tables(os.environ["TABLE_PREFIX"])
        result = measure()
    finally:
        ddb.stop()
    table = markdown(result)
    print(table)
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "scaling.json").write_text(json.dumps(result, indent=1, default=str))
    if args.write:
        text = DOC.read_text()
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        DOC.write_text(text[:start] + "\n" + table + text[end:])
    signups = [r for r in result["rows"] if r["operation"].startswith("sign-up")]
    ok = all(r["after"]["per_meetup"] >= 250 for r in signups) and all(
        r["after"]["national"] >= 1000 for r in result["rows"])
    print(json.dumps({"sign_ups_per_meetup_at_least_250": all(r["after"]["per_meetup"] >= 250 for r in signups),
                      "no_national_key_below_1000": all(r["after"]["national"] >= 1000 for r in result["rows"])}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
