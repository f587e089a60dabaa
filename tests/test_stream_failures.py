"""The outbox stream's on-failure queue is drained back into the outbox (SQS and the stream through
botocore's Stubber: no SQS locally; the outbox is DynamoDB Local), and the retry job's backlog metric."""
from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib import clock, outbox, stream_failures
from chalicelib.models import OutboxMessage, outbox_due_key
from tests.mailfixtures import registration_context

STREAM = "arn:aws:dynamodb:eu-west-1:123456789012:table/klassen-meetups-outbox/stream/2027-04-01T00:00:00.000"
QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/klassen-meetups-outbox-stream-failures"


def seq(n: int) -> str:
    return f"{n:021d}"  # DynamoDB stream sequence numbers: 21 digits and more


def failure_record(start=seq(100), end=seq(300)) -> str:
    """What Lambda sends the on-failure destination of a DynamoDB stream event source."""
    return json.dumps({
        "requestContext": {"requestId": "c9b8fa9f-5a7f-4e88-a2a4-4a2b44c3b2d4", "condition": "RetryAttemptsExhausted",
                           "approximateInvokeCount": 4,
                           "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:klassen-meetups-DeliverOutbox-X"},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0", "timestamp": "2027-04-12T17:30:00.000Z",
        "DDBStreamBatchInfo": {"shardId": "shardId-00000001712345678901-a1b2c3d4", "startSequenceNumber": start, "endSequenceNumber": end,
                               "approximateArrivalOfFirstRecord": "2027-04-12T17:29:00Z",
                               "approximateArrivalOfLastRecord": "2027-04-12T17:29:01Z", "batchSize": 2,
                               "streamArn": STREAM}})


def stream_record(seq: str, message_id: str, event="INSERT") -> dict:
    return {"eventID": seq, "eventName": event, "eventSource": "aws:dynamodb",
            "dynamodb": {"SequenceNumber": seq, "Keys": {"id": {"S": message_id}}, "StreamViewType": "NEW_IMAGE",
                         "SizeBytes": 100}}


def saved(state="pending", **changes) -> OutboxMessage:
    msg = outbox.message("drain@example.nl", "registration_cancelled", "nl", registration_context())
    for key, value in {"state": state, **changes}.items():
        setattr(msg, key, value)
    msg.save()
    return msg


def clients():
    sqs = boto3.client("sqs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    streams = boto3.client("dynamodbstreams", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    return sqs, Stubber(sqs), streams, Stubber(streams)


def test_a_failure_record_points_at_its_batch():
    batch = stream_failures.parse_failure(failure_record())
    assert batch == stream_failures.FailedBatch(STREAM, "shardId-00000001712345678901-a1b2c3d4", seq(100), seq(300))
    assert stream_failures.parse_failure("{}") is None and stream_failures.parse_failure("junk") is None


def test_only_inserts_within_the_batch_are_taken():
    records = [stream_record(seq(100), "a"), stream_record(seq(200), "b", "MODIFY"), stream_record(seq(300), "c"),
               stream_record(seq(400), "d")]
    assert stream_failures.outbox_ids(records, seq(300)) == ["a", "c"]


def test_drain_requeues_unsent_messages_and_empties_the_queue(empty_tables):
    stuck, sent, gone = saved("sending", lease_until="2099-01-01T00:00:00.000000Z"), saved("sent", due=None), "no-such-id"
    sqs, sqs_stub, streams, streams_stub = clients()
    sqs_stub.add_response("receive_message", {"Messages": [
        {"MessageId": "m1", "ReceiptHandle": "r1", "Body": failure_record()},
        {"MessageId": "m2", "ReceiptHandle": "r2", "Body": "not a failure record"}]},
        {"QueueUrl": QUEUE, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1})
    streams_stub.add_response("get_shard_iterator", {"ShardIterator": "it-1"}, {
        "StreamArn": STREAM, "ShardId": "shardId-00000001712345678901-a1b2c3d4", "ShardIteratorType": "AT_SEQUENCE_NUMBER",
        "SequenceNumber": seq(100)})
    streams_stub.add_response("get_records", {"Records": [stream_record(seq(100), stuck.id), stream_record(seq(200), sent.id),
                                                          stream_record(seq(300), gone)], "NextShardIterator": "it-2"},
                              {"ShardIterator": "it-1", "Limit": 100})
    sqs_stub.add_response("delete_message", {}, {"QueueUrl": QUEUE, "ReceiptHandle": "r1"})
    sqs_stub.add_response("receive_message", {"Messages": []}, {"QueueUrl": QUEUE, "MaxNumberOfMessages": 10,
                                                                "WaitTimeSeconds": 1})
    with sqs_stub, streams_stub:
        totals = stream_failures.drain(QUEUE, sqs=sqs, streams=streams)
    sqs_stub.assert_no_pending_responses()
    assert totals == {"records": 2, "requeued": 1, "skipped": 2, "expired": 0, "unreadable": 1}
    requeued = OutboxMessage.get(stuck.id, consistent_read=True)
    assert requeued.state == "pending" and requeued.due == outbox_due_key(requeued.id) and requeued.lease_until is None
    assert requeued.next_attempt_at <= clock.stamp()
    assert OutboxMessage.get(sent.id, consistent_read=True).state == "sent", "sent stays sent"


def test_expired_records_are_left_to_the_retry_job():
    sqs, sqs_stub, streams, streams_stub = clients()
    streams_stub.add_client_error("get_shard_iterator", service_error_code="TrimmedDataAccessException",
                                  http_status_code=400)
    with streams_stub:
        assert stream_failures.read_batch(streams, stream_failures.parse_failure(failure_record())) is None


def test_the_admin_command_needs_the_queue(monkeypatch, capsys):
    from chalicelib import admin
    monkeypatch.delenv("OUTBOX_STREAM_FAILURES_QUEUE", raising=False)
    with pytest.raises(SystemExit):
        admin.main(["drain-stream-failures"])
    monkeypatch.setattr(stream_failures, "drain", lambda url: {"records": 0, "queue": url})
    assert admin.main(["drain-stream-failures", "--queue-url", QUEUE]) == 0
    assert json.loads(capsys.readouterr().out) == {"records": 0, "queue": QUEUE}


def test_the_retry_job_reports_the_backlog_age_as_an_emf_metric(empty_tables, monkeypatch, capsys):
    import app as app_module
    now = clock.now()
    assert outbox.backlog_age_seconds(now) == 0.0
    old = saved(next_attempt_at=clock.stamp(now - timedelta(minutes=10)), attempts=3)
    assert 590 <= outbox.backlog_age_seconds(now) <= 610

    class Down:
        def send(self, message):
            raise outbox.mail.MailDeliveryFailed("SMTP 451")
    monkeypatch.setattr(outbox.mail, "backend", lambda: Down())
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "KlassenMeetups/test")
    capsys.readouterr()
    app_module.retry_outbox({"version": "0", "id": "e-1", "detail-type": "Scheduled Event", "source": "aws.events",
                             "account": "123456789012", "time": "2027-04-12T17:30:00Z", "region": "eu-west-1",
                             "resources": [], "detail": {}}, None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    metric = next(line for line in lines if "OutboxBacklogAgeSeconds" in line)
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "KlassenMeetups/test"
    assert metric["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "OutboxBacklogAgeSeconds", "Unit": "Seconds"}]
    assert metric["OutboxBacklogAgeSeconds"] >= 0
    assert OutboxMessage.get(old.id, consistent_read=True).attempts == 4
