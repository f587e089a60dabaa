"""The one claim-with-lease primitive: take an item for one runner with a conditional update.

A runner claims an item by setting a lease (a time stamp, which is also the claim's token)
in a conditional update: the condition says the item is free (no lease, or one that ran out)
and whatever else the caller's rule needs. One runner wins; the others learn it from the failed
condition. Later writes of the winner are conditioned on its lease (`held`), so a runner whose
lease ran out and was taken over can no longer write. Used by the outbox (a message), the
digests (an organiser's period) and the background jobs (a job's next page)."""
from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import PynamoDBException

from chalicelib import clock


def is_condition_failure(exc: BaseException) -> bool:
    """A write refused by its condition (not a storage failure)."""
    return isinstance(exc, PynamoDBException) and exc.cause_response_code == "ConditionalCheckFailedException"


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
