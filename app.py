"""The Klassen meetups service: wires the capability blueprints and the schedules to one Chalice app."""
from chalice import Chalice, Rate

from chalicelib.routes import (bundle, catalogue, console, digests, handovers, jobs, joining, meta, outcomes, privacy,
                               registrations, tables, youth)

app = Chalice(app_name="klassen-meetups")
app.api.binary_types.append("application/pdf")  # the bundle as a PDF
app.register_blueprint(catalogue.bp)
app.register_blueprint(registrations.bp)
app.register_blueprint(digests.bp)
app.register_blueprint(handovers.bp)
app.register_blueprint(meta.bp)
app.register_blueprint(privacy.bp)
app.register_blueprint(joining.bp)
app.register_blueprint(tables.bp)
app.register_blueprint(outcomes.bp)
app.register_blueprint(youth.bp)
app.register_blueprint(bundle.bp)
app.register_blueprint(jobs.bp)
app.register_blueprint(console.bp)  # the admin console's pages (/admin, /admin/console/...)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def retry_outbox(event):
    """Sends what a request could not: the outbox retry (EventBridge delivers at least once;
    each message is claimed before it is sent)."""
    from chalicelib import outbox
    from chalicelib.observability import emit_metric
    result = outbox.deliver_due()
    # The alarm on the outbox backlog (infra/resources.json) reads this metric every minute.
    emit_metric("OutboxBacklogAgeSeconds", outbox.backlog_age_seconds(), "Seconds")
    return result


@app.schedule(Rate(1, unit=Rate.HOURS))
def send_digests(event):
    """The organisers' digests: each due organiser gets this period's digest, once (every
    organiser's period is claimed with a conditional write before anything is sent)."""
    from chalicelib import digest
    return digest.run()


@app.schedule(Rate(1, unit=Rate.MINUTES))
def send_reminders(event):
    """Reminders before each meetup at its offsets (minute precision), each person at most once
    per reminder however often this fires (every message id is claimed with a conditional write)."""
    from chalicelib import reminders
    return reminders.run()


@app.schedule(Rate(1, unit=Rate.HOURS))
def send_outcome_links(event):
    """After a meetup ends, its host and each table's moderator get their signed outcomes link,
    once each however often this fires (deterministic outbox ids, `outbox.queue_once`)."""
    from chalicelib import outcomes
    return outcomes.send_links()


@app.schedule(Rate(1, unit=Rate.HOURS))
def apply_retention(event):
    """Erases personal data kept for the retention period (RETENTION_DAYS): registrations of
    meetups that ended or were cancelled that long ago (the counts stay), and what the activity
    log's TTL has not deleted yet. Every change is conditional; a run resumes what the last left."""
    from chalicelib import privacy
    return privacy.run_retention()


# Deployed, the outbox table's stream sends each new message within moments of its commit.
# `make package` points this at the real stream (the ARN only exists once the stack does).
OUTBOX_STREAM_PLACEHOLDER = "arn:aws:dynamodb:eu-west-1:000000000000:table/outbox/stream/placeholder"


@app.on_dynamodb_record(stream_arn=OUTBOX_STREAM_PLACEHOLDER, batch_size=25, starting_position="LATEST")
def deliver_outbox(event):
    from chalicelib import outbox
    outbox.deliver_stream_records(
        {"eventName": record.event_name, "dynamodb": {"NewImage": record.new_image}} for record in event)


# Deployed, the jobs table's stream runs each queued job, and each job again whenever its runner
# releases it at the end of an invocation's budget (a MODIFY). `make package` points this at the real stream.
JOBS_STREAM_PLACEHOLDER = "arn:aws:dynamodb:eu-west-1:000000000000:table/jobs/stream/placeholder"


@app.on_dynamodb_record(stream_arn=JOBS_STREAM_PLACEHOLDER, batch_size=10, starting_position="LATEST")
def run_jobs(event):
    """Bulk work off the request path (chalicelib/jobs.py): cancellation notices, promotions
    after a capacity rise, follow-up invitations. Each job is claimed with a lease, page by page."""
    from chalicelib import jobs
    return jobs.run_stream_records(
        {"eventName": record.event_name, "dynamodb": {"NewImage": record.new_image}} for record in event)


@app.schedule(Rate(1, unit=Rate.MINUTES))
def resume_jobs(event):
    """Jobs nobody touched for a while (a runner crashed, a stream record was lost) are resumed."""
    from chalicelib import jobs
    return jobs.resume_stalled()


# Deployed, SES publishes the bounces and complaints of the stack's configuration set to the
# mail-events topic. `make package` points this at the real topic (like the stream above).
MAIL_EVENTS_TOPIC_PLACEHOLDER = "arn:aws:sns:eu-west-1:000000000000:mail-events-placeholder"


@app.on_sns_message(topic=MAIL_EVENTS_TOPIC_PLACEHOLDER)
def handle_mail_events(event):
    """A hard bounce or a complaint suppresses the address: no more mail goes to it."""
    from chalicelib import suppression
    return suppression.record_notification(event.message)
