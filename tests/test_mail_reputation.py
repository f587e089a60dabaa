"""Mail reputation: SES's bounce and complaint events (through SNS, in their real shape) suppress an
address; the outbox never mails a suppressed address; the admin listing shows it; the sign-up
answer does not change. And SES's error texts, which can name the recipient, never reach the logs
or the outbox: only their codes. Against DynamoDB Local."""
from __future__ import annotations

import json
import os
import secrets

import boto3
import pytest

from chalicelib import mail, outbox, suppression
from chalicelib.models import OutboxMessage
from tests.factories import make_meetup
from tests.mailbox import messages_to
from tests.mailfixtures import registration_context

JSON = {"Content-Type": "application/json"}
TOPIC = "arn:aws:sns:eu-west-1:123456789012:klassen-meetups-mail-events"


def address(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(4)}@school.example.nl"


def ses_event(kind: str, recipient: str, **details) -> dict:
    """An SES configuration-set event as SES publishes it to SNS (eventType; bounce/complaint
    objects as documented in 'Contents of event data that Amazon SES publishes to Amazon SNS')."""
    mail_part = {"timestamp": "2027-04-12T17:30:00.000Z", "source": "meetups@klassen.example.nl",
                 "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/klassen.example.nl",
                 "sendingAccountId": "123456789012", "messageId": "0102018f-ses-message-id",
                 "destination": [recipient], "headersTruncated": False,
                 "tags": {"ses:configuration-set": ["klassen-meetups-mail"]}}
    if kind == "Bounce":
        body = {"eventType": "Bounce", "mail": mail_part, "bounce": {
            "feedbackId": "0102018f-feedback", "bounceType": details.get("bounce_type", "Permanent"),
            "bounceSubType": details.get("sub_type", "General"),
            "bouncedRecipients": [{"emailAddress": recipient, "action": "failed", "status": "5.1.1",
                                   "diagnosticCode": f"smtp; 550 5.1.1 <{recipient}>: Recipient address rejected"}],
            "timestamp": "2027-04-12T17:30:01.000Z", "reportingMTA": "dsn; a1-2.smtp-out.eu-west-1.amazonses.com"}}
    else:
        body = {"eventType": "Complaint", "mail": mail_part, "complaint": {
            "feedbackId": "0102018f-feedback", "complaintSubType": None, "userAgent": "Mail client",
            "complaintFeedbackType": "abuse", "complainedRecipients": [{"emailAddress": recipient}],
            "timestamp": "2027-04-12T17:31:00.000Z", "arrivalDate": "2027-04-12T17:30:59.000Z"}}
    return body


def sns_lambda_event(message: dict) -> dict:
    """The Lambda event of an SNS subscription (one record per invocation)."""
    return {"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0",
        "EventSubscriptionArn": TOPIC + ":2f0b-4a2e-subscription",
        "Sns": {"Type": "Notification", "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e", "TopicArn": TOPIC,
                "Subject": None, "Message": json.dumps(message), "Timestamp": "2027-04-12T17:30:02.000Z",
                "SignatureVersion": "1", "Signature": "EXAMPLE", "SigningCertUrl": "https://sns.example/cert.pem",
                "UnsubscribeUrl": "https://sns.example/unsubscribe", "MessageAttributes": {}}}]}


def deliver_sns(app_module, message: dict):
    from chalice.local import LambdaContext
    return app_module.handle_mail_events(sns_lambda_event(message), LambdaContext("HandleMailEvents", 256))


@pytest.fixture(scope="module")
def app_module(app):
    import app as module
    return module


def sign_up(client, meetup_id, email):
    body = {"name": "Bo Bounce", "email": email, "role": "teacher", "consent": True}
    return client.http.post(f"/meetups/{meetup_id}/registrations", headers=JSON, body=json.dumps(body))


def outbox_messages_to(recipient: str) -> list[OutboxMessage]:
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(
        TableName=os.environ["TABLE_PREFIX"] + "outbox", FilterExpression="recipient = :r",
        ExpressionAttributeValues={":r": {"S": recipient}}, ConsistentRead=True)
    return [OutboxMessage.from_raw_data(item) for page in pages for item in page["Items"]]


def test_a_hard_bounce_suppresses_the_address_and_no_more_mail_goes_to_it(client, app_module, admin_headers,
                                                                         monkeypatch):
    meetup = make_meetup(capacity=5)
    bouncing, fine = address("bounce"), address("fine")
    first = sign_up(client, meetup.id, bouncing)
    assert first.status_code == 201 and len(messages_to(bouncing)) == 1

    assert deliver_sns(app_module, ses_event("Bounce", bouncing.upper())) == {"suppressed": 1, "ignored": 0}
    assert suppression.is_suppressed(bouncing), "normalised: case and spaces do not matter"

    # Another meetup: the same answer as for anyone, no mail, the message marked suppressed.
    other = make_meetup(capacity=5)
    from chalicelib import outbox
    handed_over, dispatch = [], outbox.dispatch

    def noting(messages):  # which messages these two sign-ups queued (still delivered as usual)
        handed_over.extend(m.id for m in messages)
        return dispatch(messages)
    monkeypatch.setattr(outbox, "dispatch", noting)
    answer, control = sign_up(client, other.id, bouncing), sign_up(client, other.id, fine)
    assert answer.status_code == control.status_code == 201
    assert set(answer.json_body) == set(control.json_body) and \
        set(answer.json_body["registration"]) == set(control.json_body["registration"])
    assert answer.json_body["registration"]["status"] == "confirmed"
    assert len(messages_to(bouncing)) == 1, "nothing more was sent"
    assert len(messages_to(fine)) == 1
    # The fine address's confirmation sent, the bouncing one's suppressed; neither keeps its address.
    queued = [OutboxMessage.get(message_id, consistent_read=True) for message_id in handed_over]
    assert sorted(m.state for m in queued) == ["sent", "suppressed"]
    assert all(m.recipient is None and not m.context for m in queued)
    stored = next(m for m in queued if m.state == "suppressed")
    assert stored.due is None and stored.next_attempt_at is None, "off the retry index"

    listing = client.http.get(f"/admin/meetups/{other.id}/registrations", headers=admin_headers).json_body
    flags = {row["email"]: row["suppressed"] for row in listing["registrations"]}
    assert flags == {bouncing: True, fine: False}


def test_the_suppressions_table_never_holds_the_address(app_module):
    recipient = address("hashed")
    deliver_sns(app_module, ses_event("Complaint", recipient))
    items = boto3.client("dynamodb").scan(TableName=os.environ["TABLE_PREFIX"] + "suppressions")["Items"]
    assert items and recipient not in json.dumps(items) and recipient.split("@")[0] not in json.dumps(items)
    key = suppression.address_key(recipient)
    record = next(item for item in items if item["address_hash"]["S"] == key)
    assert record["reason"]["S"] == "complaint" and record["detail"]["S"] == "abuse"


def test_a_complaint_suppresses_and_a_repeat_is_counted_once_per_event(app_module):
    recipient = address("complaint")
    for _ in range(2):
        deliver_sns(app_module, ses_event("Complaint", recipient))
    from chalicelib.models import Suppression
    record = Suppression.get(suppression.address_key(recipient), consistent_read=True)
    assert record.reason == "complaint" and record.events == 2


@pytest.mark.parametrize("message", [
    ses_event("Bounce", "soft@school.example.nl", bounce_type="Transient", sub_type="MailboxFull"),
    {"eventType": "Delivery", "mail": {}, "delivery": {"recipients": ["x@school.example.nl"]}},
    {"unrelated": True},
])
def test_transient_bounces_deliveries_and_junk_suppress_nothing(app_module, message):
    assert deliver_sns(app_module, message)["suppressed"] == 0
    assert not suppression.is_suppressed("soft@school.example.nl")


def test_identity_notifications_are_understood_too():
    """SES's older identity notifications say notificationType instead of eventType."""
    recipient = address("identity")
    event = ses_event("Bounce", recipient)
    event["notificationType"] = event.pop("eventType")
    assert suppression.record_notification(json.dumps(event)) == {"suppressed": 1, "ignored": 0}
    assert suppression.record_notification("not json") == {"suppressed": 0, "ignored": 1}


def test_the_retry_job_marks_a_suppressed_message_instead_of_sending_it(empty_tables):
    from datetime import timedelta

    from chalicelib import clock
    recipient = address("retry")
    suppression.suppress(recipient, "bounce", "General")
    msg = outbox.message(recipient, "registration_cancelled", "nl", registration_context())
    msg.save()

    class Never:
        def send(self, message):
            raise AssertionError("a suppressed address is never mailed")

    result = outbox.deliver_due(now=clock.now() + timedelta(minutes=5), backend=Never())
    assert result["sent"] == 0 and result["suppressed"] == 1
    assert OutboxMessage.get(msg.id, consistent_read=True).state == "suppressed"


# --- SES: the configuration set, and error codes only -------------------------------------------------

def _ses():
    from botocore.stub import Stubber
    client = boto3.client("ses", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def test_ses_sends_through_the_configuration_set():
    from botocore.stub import ANY
    client, stubber = _ses()
    stubber.add_response("send_raw_email", {"MessageId": "ses-1"},
                         {"Source": "meetups@klassen.example.nl", "Destinations": ["anna@example.nl"],
                          "RawMessage": {"Data": ANY}, "ConfigurationSetName": "klassen-meetups-mail"})
    with stubber:
        mail.SesBackend(client=client, configuration_set="klassen-meetups-mail").send(
            mail.compose("registration_cancelled", "nl", "anna@example.nl", registration_context()))
    stubber.assert_no_pending_responses()


def test_ses_error_texts_with_the_address_stay_out_of_last_error_and_logs(empty_tables):
    from tests.test_logging import json_log
    recipient = address("secret")
    client, stubber = _ses()
    stubber.add_client_error("send_raw_email", service_error_code="MessageRejected",
                             service_message=f"Address blacklisted: {recipient}", http_status_code=400)
    msg = outbox.message(recipient, "registration_cancelled", "nl", registration_context())
    msg.save()
    with stubber, json_log() as records:
        assert outbox.deliver_now(msg, backend=mail.SesBackend(client=client)) == 0
    stored = OutboxMessage.get(msg.id, consistent_read=True)
    assert stored.last_error == "MailDeliveryFailed: SES MessageRejected"
    logged = json.dumps(records)
    assert "SES MessageRejected" in logged, "the failure is logged, with its code"
    assert recipient not in logged and "blacklisted" not in logged
