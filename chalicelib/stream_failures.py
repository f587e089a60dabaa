"""The outbox stream's on-failure queue, drained back into the outbox.

When `deliver_outbox` fails on a batch MaximumRetryAttempts times (with the batch bisected down
to the failing record), Lambda sends the queue a *pointer* to the records (stream, shard, first
and last sequence number), not the records. `drain` reads each pointer, fetches those records from
the stream while it still keeps them (24 hours), and makes their outbox messages due now, so the
retry job sends them (with its backoff, attempts and give-up). Records already expired need
nothing: their messages are still in the outbox's due index and the retry job takes them after
their grace. A message that was sent or suppressed meanwhile is left alone.

    python -m chalicelib.admin drain-stream-failures --queue-url "$QUEUE_URL"
"""
from __future__ import annotations

import json
from dataclasses import dataclass


from chalicelib import clock
from chalicelib.models import OutboxMessage, outbox_due_key
from chalicelib.observability import logger
from chalicelib.statuses import OutboxState
from chalicelib.storage import conditional



@dataclass(frozen=True)
class FailedBatch:
    stream_arn: str
    shard_id: str
    start_sequence: str
    end_sequence: str


def parse_failure(body: str) -> FailedBatch | None:
    """The batch an on-failure record points at (Lambda's `DDBStreamBatchInfo`), else None."""
    try:
        info = json.loads(body)["DDBStreamBatchInfo"]
        return FailedBatch(info["streamArn"], info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"])
    except (ValueError, KeyError, TypeError):
        return None


def outbox_ids(records: list[dict], end_sequence: str) -> list[str]:
    """Ids of the outbox messages inserted by `records`, up to the batch's last sequence number."""
    ids = []
    for record in records:
        dynamodb = record.get("dynamodb", {})
        if int(dynamodb.get("SequenceNumber", "0")) > int(end_sequence):
            break
        if record.get("eventName") == "INSERT":
            key = dynamodb.get("Keys", {}).get("id", {}).get("S")
            if key:
                ids.append(key)
    return ids


def read_batch(streams, batch: FailedBatch, max_calls: int = 20) -> list[str] | None:
    """The outbox ids of a failed batch, read from the stream; None when the stream no longer has them."""
    from botocore.exceptions import ClientError
    try:
        iterator = streams.get_shard_iterator(StreamArn=batch.stream_arn, ShardId=batch.shard_id,
                                              ShardIteratorType="AT_SEQUENCE_NUMBER",
                                              SequenceNumber=batch.start_sequence)["ShardIterator"]
        records: list[dict] = []
        for _ in range(max_calls):
            page = streams.get_records(ShardIterator=iterator, Limit=100)
            records += page.get("Records", [])
            iterator = page.get("NextShardIterator")
            last = records[-1]["dynamodb"]["SequenceNumber"] if records else None
            if not iterator or (last and int(last) >= int(batch.end_sequence)):
                break
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("TrimmedDataAccessException", "ResourceNotFoundException"):
            return None
        raise
    return outbox_ids(records, batch.end_sequence)


def requeue(ids: list[str], now=None) -> dict[str, int]:
    """Makes each still unsent message due now (for the retry job); sent or suppressed ones stay."""
    now = now or clock.now()
    counts = {"requeued": 0, "skipped": 0}
    for message_id in ids:
        requeued = conditional(lambda: OutboxMessage(id=message_id).update(
            actions=[OutboxMessage.state.set(OutboxState.PENDING), OutboxMessage.due.set(outbox_due_key(message_id)),
                     OutboxMessage.next_attempt_at.set(clock.stamp(now)), OutboxMessage.lease_until.remove()],
            condition=OutboxMessage.id.exists() & OutboxMessage.state.is_in(OutboxState.PENDING, OutboxState.SENDING)))
        counts["requeued" if requeued else "skipped"] += 1
    return counts


def drain(queue_url: str, *, sqs=None, streams=None, max_messages: int = 1000) -> dict[str, int]:
    """Receives the queue's failure records until it is empty (or `max_messages`), requeues their
    messages and deletes each record once handled. Returns counts."""
    import boto3
    sqs = sqs or boto3.client("sqs")
    streams = streams or boto3.client("dynamodbstreams")
    totals = {"records": 0, "requeued": 0, "skipped": 0, "expired": 0, "unreadable": 0}
    while totals["records"] < max_messages:
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not received:
            break
        for message in received:
            totals["records"] += 1
            batch = parse_failure(message.get("Body", ""))
            if batch is None:
                totals["unreadable"] += 1  # kept in the queue for a person to look at
                continue
            ids = read_batch(streams, batch)
            if ids is None:
                totals["expired"] += 1  # the retry job sends those messages anyway
            else:
                for key, value in requeue(ids).items():
                    totals[key] += value
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    logger.info("stream failures drained", extra=totals)
    return totals
