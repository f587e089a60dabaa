"""Storage mechanics, in one place: the one DynamoDB connection, transactions with named parts,
conditional writes, the claim-with-lease primitive, and the records every change writes (the
activity log, the outbox). The domain modules hold the rules; this module how they are stored.

Nothing here reads the settings or connects at import: the connection is made on first use."""
from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timedelta
from typing import Callable, Iterator

from pynamodb.connection import Connection, TableConnection
from pynamodb.connection.base import MetaTable
from pynamodb.constants import (ATTR_DEFINITIONS, ATTR_NAME, GLOBAL_SECONDARY_INDEXES, INDEX_NAME, KEY_SCHEMA,
                                LOCAL_SECONDARY_INDEXES, TABLE_NAME)
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import clock
from chalicelib.config import get_settings
from chalicelib.errors import ServiceUnavailable
from chalicelib.messages import DATABASE_DOWN
from chalicelib.models import ALL_MODELS, POOL_CONNECTIONS, Activity, OutboxMessage, activity_keys
from chalicelib.statuses import OutboxState

# --- the one connection ---------------------------------------------------------------------------
# PynamoDB gives every model class its own connection, and so its own botocore client, made on
# first use: each costs a cold start tens of milliseconds. All tables are in one region behind
# one endpoint, so one connection, made when the first request needs it, serves every model and
# every transaction.

_lock = threading.Lock()
_shared: Connection | None = None


def connection() -> Connection:
    """The shared connection, made on first use from the settings (again if they changed)."""
    global _shared
    settings = get_settings()
    with _lock:
        if _shared is None or (_shared.region, _shared.host) != (settings.region, settings.dynamodb_endpoint):
            _shared = Connection(region=settings.region, host=settings.dynamodb_endpoint,
                                 max_pool_connections=POOL_CONNECTIONS["max_pool_connections"],
                                 connect_timeout_seconds=POOL_CONNECTIONS["connect_timeout_seconds"],
                                 read_timeout_seconds=POOL_CONNECTIONS["read_timeout_seconds"],
                                 max_retry_attempts=POOL_CONNECTIONS["max_retry_attempts"])
        return _shared


def _meta_table(model) -> MetaTable:
    """What PynamoDB's own `_get_connection` tells its connection about a model's table, with the
    indexes of every model that shares the table (Registration's, when a WaitlistEntry is first)."""
    schema = model._get_schema()
    indexes = {"global_secondary_indexes": {}, "local_secondary_indexes": {}}
    attributes = {}
    for other in ALL_MODELS:
        if other.Meta.table_suffix == model.Meta.table_suffix:
            other_schema = other._get_schema()
            for definition in other_schema["attribute_definitions"]:
                attributes.setdefault(definition[ATTR_NAME], definition)
            for kind, found in indexes.items():
                for index in other_schema[kind]:
                    found.setdefault(index["index_name"], index["key_schema"])
    return MetaTable({
        TABLE_NAME: model.Meta.table_name,
        KEY_SCHEMA: schema["key_schema"],
        ATTR_DEFINITIONS: [*schema["attribute_definitions"],
                           *(d for name, d in attributes.items()
                             if name not in {a[ATTR_NAME] for a in schema["attribute_definitions"]})],
        GLOBAL_SECONDARY_INDEXES: [{INDEX_NAME: name, KEY_SCHEMA: keys}
                                   for name, keys in indexes["global_secondary_indexes"].items()],
        LOCAL_SECONDARY_INDEXES: [{INDEX_NAME: name, KEY_SCHEMA: keys}
                                  for name, keys in indexes["local_secondary_indexes"].items()],
    })


class _ModelTable(TableConnection):
    """A model's table connection: its table name (read from the settings when used) on the
    shared connection. Installed as each model's `_connection`, so PynamoDB keeps it: its
    `table_name` always equals the model's `Meta.table_name`."""

    def __init__(self, model):  # noqa: super().__init__ would make a connection of its own
        self._model = model

    @property
    def table_name(self) -> str:
        return self._model.Meta.table_name

    @property
    def connection(self) -> Connection:
        shared = connection()
        if self.table_name not in shared._tables:
            with _lock:  # a rush of first requests on many threads: the schema is added once
                if self.table_name not in shared._tables:
                    shared.add_meta_table(_meta_table(self._model))
        return shared


for _model in ALL_MODELS:
    _model._connection = _ModelTable(_model)


def query_partition(model, hash_key: str, *, consistent: bool = True) -> Iterator[dict]:
    """Every raw item of one partition of `model`'s table, whatever kind of item it is (one
    Query, paged): for tables where several models share a partition."""
    table = model._get_connection()
    start = None
    while True:
        page = table.query(hash_key, consistent_read=consistent, exclusive_start_key=start)
        yield from page.get("Items", [])
        start = page.get("LastEvaluatedKey")
        if not start:
            return


# --- turning storage failures into domain errors --------------------------------------------------

class storage_errors:  # noqa: N801 - used as `with storage_errors():`
    """`with storage_errors():` around DynamoDB calls: an AWS failure that no rule handles
    (throttling, an unreachable endpoint) becomes ServiceUnavailable; the cause is kept."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and isinstance(exc, PynamoDBException):
            raise ServiceUnavailable(DATABASE_DOWN) from exc
        return False


def is_condition_failure(exc: BaseException) -> bool:
    """A write refused by its condition (not a storage failure)."""
    return isinstance(exc, PynamoDBException) and exc.cause_response_code == "ConditionalCheckFailedException"


def conditional(write: Callable[[], object]) -> bool:
    """Makes one conditional write (`lambda: item.update(...)`): True when it was made, False
    when its condition failed. Any other storage failure becomes ServiceUnavailable."""
    try:
        write()
        return True
    except PynamoDBException as exc:
        if is_condition_failure(exc):
            return False
        raise ServiceUnavailable(DATABASE_DOWN) from exc


# --- transactions with named parts ----------------------------------------------------------------

class Transaction:
    """A PynamoDB TransactWrite whose parts carry names, so that a cancelled transaction
    tells which condition failed (PynamoDB sends condition checks, deletes, puts, then
    updates, whatever order they were added in; this keeps the bookkeeping in one place)."""

    _ORDER = ("check", "delete", "put", "update")

    def __init__(self):
        self._tx = TransactWrite(connection=connection())
        self._names: dict[str, list[str]] = {kind: [] for kind in self._ORDER}

    def put(self, name: str, model, condition=None, return_old: bool = False):
        self._names["put"].append(name)
        self._tx.save(model, condition=condition, return_values="ALL_OLD" if return_old else None)

    def update(self, name: str, model, actions, condition=None, return_old: bool = False):
        self._names["update"].append(name)
        self._tx.update(model, actions=actions, condition=condition,
                        return_values="ALL_OLD" if return_old else None)

    def delete(self, name: str, model, condition=None):
        self._names["delete"].append(name)
        self._tx.delete(model, condition=condition)

    def check(self, name: str, model_cls, hash_key, range_key=None, condition=None):
        self._names["check"].append(name)
        self._tx.condition_check(model_cls, hash_key, range_key, condition=condition)

    def commit(self) -> None:
        """Commits; raises TransactionCancelled (with reasons by name) or the storage error."""
        try:
            self._tx._commit()
        except TransactWriteError as exc:
            names = [name for kind in self._ORDER for name in self._names[kind]]
            reasons = {}
            for name, reason in zip(names, exc.cancellation_reasons):
                if reason is not None and reason.code != "None":
                    reasons[name] = reason
            if reasons or exc.cause_response_code == "TransactionCanceledException":
                raise TransactionCancelled(reasons) from exc
            raise ServiceUnavailable(DATABASE_DOWN) from exc


def retry_pause(attempt: int) -> None:
    """A short, jittered, growing pause before a transaction is tried again (at most 0.2 s),
    so that writers that collided on the same items do not collide again in step."""
    time.sleep(min(0.2, 0.005 * 2 ** min(attempt, 6)) * random.random())


class TransactionCancelled(Exception):
    """Not a domain error: the service that ran the transaction decides what it means."""

    def __init__(self, reasons: dict):
        super().__init__(", ".join(f"{name}: {reason.code}" for name, reason in reasons.items()))
        self.reasons = reasons

    def failed(self, name: str) -> bool:
        reason = self.reasons.get(name)
        return reason is not None and reason.code == "ConditionalCheckFailed"

    def old_item(self, name: str) -> dict | None:
        reason = self.reasons.get(name)
        return reason.raw_item if reason is not None else None


# --- claims with a lease --------------------------------------------------------------------------
# A runner claims an item by setting a lease (a time stamp, which is also the claim's token) in a
# conditional update: the condition says the item is free (no lease, or one that ran out) and
# whatever else the caller's rule needs. One runner wins; the others learn it from the failed
# condition. Later writes of the winner are conditioned on its lease (`held`), so a runner whose
# lease ran out and was taken over can no longer write. Used by the outbox (a message), the
# digests (an organiser's period) and the background jobs (a job's next page).

def lease_until(now: datetime, lease: timedelta) -> str:
    return clock.stamp(now + lease)


def claim(item, actions: list, condition) -> bool:
    """One conditional update taking `item`; False when the condition failed (another runner
    holds it, or the rule no longer allows it). Other storage failures are raised. The update
    refreshes `item` with the stored item."""
    try:
        item.update(actions=actions, condition=condition)
        return True
    except PynamoDBException as exc:
        if is_condition_failure(exc):
            return False
        raise


def free(attribute, now: datetime):
    """The condition "nobody holds a lease on this item now": no lease, or one that ran out."""
    return attribute.does_not_exist() | (attribute < clock.stamp(now))


def held(attribute, token: str):
    """The condition "the lease `token` is still ours"."""
    return attribute == token


# --- the records a change writes with it ----------------------------------------------------------

def new_activity(kind: str, meetup, now: datetime, details: dict) -> Activity:
    """An UNSAVED activity record of a change of `meetup` (the digest reads them, by day): put it
    in the change's own transaction."""
    return Activity(
        **activity_keys(now), type=kind,
        meetup_id=meetup.id, province=meetup.province, details=details,
        expires_at=now + get_settings().retention)


def new_outbox_message(message_id: str, *, recipient: str, recipient_hash: str, template: str, language: str,
                       context: dict, due: str, next_attempt_at: str, now: datetime) -> OutboxMessage:
    """An UNSAVED pending outbox message (chalicelib.outbox.message says what goes in it)."""
    return OutboxMessage(id=message_id, state=OutboxState.PENDING, due=due, next_attempt_at=next_attempt_at,
                         attempts=0, recipient=recipient, recipient_hash=recipient_hash, template=template,
                         language=language, context=context, created_at=clock.stamp(now))
