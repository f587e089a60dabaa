"""Background jobs: the bulk work an admin change starts, off the request path.

An admin request commits its change (a meetup cancelled, a capacity raised, a handover accepted)
and answers at once with a job id; the job then tells, promotes or invites everyone concerned,
page by page. Its progress is the job item (table `jobs`): `GET /admin/jobs/{id}`.

Kinds:
- `meetup_cancelled`: the "will not take place" email to everyone still registered;
- `meetup_changed`: the update (with the raised calendar SEQUENCE) to every confirmed person after a
  change of time, place, mode or join details;
- `promotions`: those in line into the seats a capacity rise freed (`registration.fill_free_seats`);
- `invitations`: the follow-up invitations of a handover to the opted-in registrants.

Rules, and how they hold:
- Resumable: after each page the job saves its cursor (the last registration sk processed)
  together with the count done, in one update conditioned on the runner's lease. A runner that
  crashes leaves the cursor of its last whole page: the next one goes on from there.
- One runner at a time: a runner claims the job with a lease (`storage.claim`, the primitive the
  outbox and the digests use); every progress update is conditioned on that lease, so a runner
  whose lease ran out and was taken over stops at its next page.
- Exactly once per person: each email has an id derived from (job subject, person) and is put
  with `attribute_not_exists` (a page redone after a crash queues nobody twice); a promotion is
  a transaction conditioned on who stands first in line.

Who runs them (`Settings.job_runner`): deployed, the jobs table's stream (INSERT and MODIFY of an
unfinished job: `app.run_jobs`), a page budget per invocation; releasing the lease at the end of
the budget is itself a MODIFY, which starts the next invocation. The schedule `app.resume_jobs`
nudges a job nobody has touched for a while (a crashed runner). Under `make run` a worker thread
runs them; the tests run them within the request (`inline`) or call `run` themselves (`schedule`).
"""
from __future__ import annotations

import queue
import secrets
import threading
import time
from datetime import timedelta
from typing import Callable, Iterable

from pynamodb.exceptions import DoesNotExist

from chalicelib import clock, config, storage
from chalicelib.errors import DomainError, NotFound
from chalicelib.messages import Message
from chalicelib.models import JOB_UNFINISHED, REGISTRATION_PREFIX, Job, JobsByUnfinished, Registration
from chalicelib.observability import logger
from chalicelib.statuses import JobState, MeetupState, RegistrationStatus
from chalicelib.storage import conditional, storage_errors

KINDS = ("meetup_cancelled", "meetup_changed", "promotions", "invitations")
STATES = tuple(JobState)
PAGE = 250  # registrations read per page (one Query)
LEASE = timedelta(minutes=2)  # far longer than one page
BUDGET_SECONDS = 240.0  # per invocation deployed (the function's timeout is 300 s)
MAX_ATTEMPTS = 5  # failed runs in a row before a job is `failed`
STALLED = timedelta(minutes=2)  # untouched this long while unfinished: resumed by the schedule
KEPT = timedelta(days=90)  # a finished job's record, then TTL

JOB_NOT_FOUND = Message("Deze taak bestaat niet.", "There is no such job.")
JOB_FAILED = Message("De taak is na herhaalde pogingen gestopt; de beheerder kan de wijziging opnieuw opslaan "
                     "om het resterende werk te doen.",
                     "The job stopped after repeated attempts; saving the change again does the rest of the work.")


def new_id() -> str:
    return secrets.token_urlsafe(12)


def url(job: Job) -> str:
    return f"/admin/jobs/{job.id}"


def reference(job: Job | None) -> dict | None:
    """What an admin answer carries about the job it started: `{id, url}`."""
    return None if job is None else {"id": job.id, "url": url(job)}


def view(job: Job, lang: str = "nl") -> dict:
    error = None
    if job.error:
        error = {"code": job.error.get("code"), "message": job.error.get("en" if lang == "en" else "nl")}
    return {"id": job.id, "kind": job.kind, "meetup_id": job.meetup_id, "state": job.state,
            "done": int(job.done or 0), "total": None if job.total is None else int(job.total),
            "created_at": clock.to_public(job.created_at),
            "started_at": clock.to_public(job.started_at) if job.started_at else None,
            "finished_at": clock.to_public(job.finished_at) if job.finished_at else None,
            "error": error, "url": url(job)}


def load(job_id: str) -> Job:
    if not job_id or len(job_id) > 100:
        raise NotFound(JOB_NOT_FOUND)
    with storage_errors():
        try:
            return Job.get(job_id, consistent_read=True)
        except DoesNotExist:
            raise NotFound(JOB_NOT_FOUND) from None


# --- starting -----------------------------------------------------------------------------------

def start(kind: str, meetup_id: str, *, params: dict | None = None, total: int | None = None,
          job_id: str | None = None, actor: str | None = None) -> Job:
    """Queue a job and hand it to this deployment's runner. With a deterministic `job_id` a job
    that exists already is returned as it is (started once)."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}")
    stamp = clock.stamp(clock.now())
    job = Job(id=job_id or new_id(), kind=kind, meetup_id=meetup_id, params=params or {}, state=JobState.QUEUED,
              unfinished=JOB_UNFINISHED, done=0, total=total, pages=0, attempts=0, actor=actor,
              created_at=stamp, updated_at=stamp)
    if not conditional(lambda: job.save(condition=Job.id.does_not_exist())):
        existing = load(job.id)
        if existing.state != JobState.FAILED:
            return existing
        # Started before and given up: started again, from where it stopped.
        if not conditional(lambda: existing.update(
                actions=[Job.state.set(JobState.QUEUED), Job.attempts.set(0), Job.error.remove(),
                         Job.finished_at.remove(), Job.unfinished.set(JOB_UNFINISHED),
                         Job.updated_at.set(stamp), Job.expires_at.remove()],
                condition=Job.state == JobState.FAILED)):
            return existing
        job = existing
    logger.info("job queued", extra={"job_id": job.id, "kind": kind, "meetup_id": meetup_id, "total": total})
    return dispatch(job.id) or job


def dispatch(job_id: str) -> Job | None:
    """Hand a job to this deployment's runner; inline, returns the job as it ended."""
    mode = config.get_settings().job_runner
    if mode == "inline":
        return run(job_id, budget_seconds=None)
    if mode == "background":
        _worker().queue.put(job_id)
    return None
    # "stream": the jobs table's stream runs it (app.run_jobs); "schedule": resume_stalled or a test.


# --- running ------------------------------------------------------------------------------------

class Step:
    """What one page did: how many people it handled, the cursor after it, whether the job is
    finished, and the emails it queued (dispatched once the progress is saved)."""

    def __init__(self, processed: int, cursor: str | None, finished: bool, mails: list | None = None):
        self.processed, self.cursor, self.finished, self.mails = processed, cursor, finished, mails or []


def registrations_page(meetup_id: str, cursor: str | None, size: int | None = None) -> tuple[list[Registration], str | None, bool]:
    """The next `size` (default PAGE) registrations of a meetup after `cursor` (a registration
    sk), in key order; returns them, the new cursor and whether more may follow. One Query."""
    size = size or PAGE
    lower = cursor or REGISTRATION_PREFIX
    found = Registration.query(meetup_id, Registration.sk.between(lower, REGISTRATION_PREFIX[:-1] + "$"),
                               consistent_read=True, limit=size, page_size=size)
    page = [r for r in found if r.sk != cursor]
    more = found.last_evaluated_key is not None
    return page, (page[-1].sk if page else cursor), more


def _cancelled_step(job: Job) -> Step:
    from chalicelib import catalogue, outbox, registration
    meetup = catalogue.load(job.meetup_id, consistent=True)
    if meetup.state != MeetupState.CANCELLED:  # reopened meanwhile: nobody else is told
        return Step(0, job.cursor, True)
    page, cursor, more = registrations_page(job.meetup_id, job.cursor)
    people = [r for r in page if r.status in (RegistrationStatus.CONFIRMED, RegistrationStatus.WAITLISTED) and not r.erased_at]
    queued = outbox.queue_each({m.id: m for m in (registration.cancellation_notice(meetup, p) for p in people)})
    return Step(len(people), cursor, not more, queued)


def _changed_step(job: Job) -> Step:
    """The update after a change of time, place, mode or join details, to every confirmed person
    (one message id per person and `calendar_sequence`: a later change starts its own job)."""
    from chalicelib import catalogue, outbox, registration
    meetup = catalogue.load(job.meetup_id, consistent=True)
    if meetup.state == MeetupState.CANCELLED or int(meetup.calendar_sequence or 0) != int((job.params or {}).get("sequence", -1)):
        return Step(0, job.cursor, True)  # cancelled, or changed again: that change's job tells them
    page, cursor, more = registrations_page(job.meetup_id, job.cursor)
    people = [r for r in page if r.status == RegistrationStatus.CONFIRMED and not r.erased_at]
    queued = outbox.queue_each({m.id: m for m in (registration.change_notice(meetup, p) for p in people)})
    return Step(len(people), cursor, not more, queued)


def _promotions_step(job: Job) -> Step:
    from chalicelib import catalogue, registration
    mails = registration.fill_free_seats(job.meetup_id)
    left = registration.seats_to_fill(catalogue.load(job.meetup_id, consistent=True))
    return Step(len(mails), None, not mails or not left, mails)


def _invitations_step(job: Job) -> Step:
    from chalicelib import handover
    processed, cursor, finished, queued = handover.invitations_page(job, PAGE)
    return Step(processed, cursor, finished, queued)


STEPS: dict[str, Callable[[Job], Step]] = {"meetup_cancelled": _cancelled_step, "meetup_changed": _changed_step,
                                           "promotions": _promotions_step,
                                           "invitations": _invitations_step}


def _claim(job: Job) -> str | None:
    now = clock.now()
    lease, stamp = storage.lease_until(now, LEASE), clock.stamp(now)
    claimed = storage.claim(job, [Job.state.set(JobState.RUNNING), Job.lease_until.set(lease), Job.updated_at.set(stamp),
                                 Job.started_at.set(Job.started_at | stamp)],
                           Job.state.is_in(JobState.QUEUED, JobState.RUNNING) & storage.free(Job.lease_until, now))
    return lease if claimed else None


def run(job_id: str, *, budget_seconds: float | None = BUDGET_SECONDS, max_pages: int | None = None,
        after_page: Callable[[Job], None] | None = None) -> Job | None:
    """Run a job until it is finished, the budget is spent (then the lease is released, for the
    next invocation) or another runner holds it. `after_page` is for tests (a crash after a page).
    Returns the job as this runner last saw it."""
    from chalicelib import outbox
    try:
        job = Job.get(job_id, consistent_read=True)
    except DoesNotExist:
        return None
    if job.state not in (JobState.QUEUED, JobState.RUNNING):
        return job
    lease = _claim(job)
    if lease is None:
        return job  # another runner is at it
    started, pages = time.monotonic(), 0
    try:
        while True:
            if pages and ((max_pages is not None and pages >= max_pages)
                          or (budget_seconds is not None and time.monotonic() - started > budget_seconds)):
                _release(job, lease)
                return job
            step = STEPS[job.kind](job)
            pages += 1
            now = clock.now()
            stamp, next_lease = clock.stamp(now), storage.lease_until(now, LEASE)
            done = int(job.done or 0) + step.processed
            actions = [Job.done.add(step.processed), Job.pages.add(1), Job.updated_at.set(stamp), Job.attempts.set(0)]
            actions.append(Job.cursor.set(step.cursor) if step.cursor else Job.cursor.remove())
            if step.finished:
                actions += [Job.state.set(JobState.DONE), Job.finished_at.set(stamp), Job.unfinished.remove(),
                            Job.lease_until.remove(), Job.expires_at.set(now + KEPT)]
                if job.total is None or int(job.total) < done:
                    actions.append(Job.total.set(done))
            else:
                actions.append(Job.lease_until.set(next_lease))
            if not storage.claim(job, actions, storage.held(Job.lease_until, lease)):
                logger.warning("job lease lost; another runner goes on", extra={"job_id": job.id})
                outbox.dispatch(step.mails)  # queued all the same: each is sent once
                return job
            lease = next_lease
            outbox.dispatch(step.mails)
            if after_page is not None:
                after_page(job)
            if step.finished:
                logger.info("job done", extra={"job_id": job.id, "kind": job.kind, "done": done,
                                               "pages": int(job.pages)})
                return job
    except Exception as exc:  # noqa: BLE001 - recorded on the job, retried, then failed
        if getattr(exc, "simulated_crash", False):
            raise
        _failed_attempt(job, lease, exc)
        return job


def _release(job: Job, lease: str) -> None:
    storage.claim(job, [Job.lease_until.remove(), Job.updated_at.set(clock.stamp(clock.now()))],
                 storage.held(Job.lease_until, lease))


def _failed_attempt(job: Job, lease: str, exc: Exception) -> None:
    now = clock.now()
    attempts = int(job.attempts or 0) + 1
    logger.exception("job page failed", extra={"job_id": job.id, "kind": job.kind, "attempts": attempts})
    actions = [Job.attempts.set(attempts), Job.lease_until.remove(), Job.updated_at.set(clock.stamp(now))]
    if attempts >= MAX_ATTEMPTS:
        message = exc.message if isinstance(exc, DomainError) and isinstance(getattr(exc, "message", None), Message) \
            else JOB_FAILED
        actions += [Job.state.set(JobState.FAILED), Job.finished_at.set(clock.stamp(now)), Job.unfinished.remove(),
                    Job.error.set({"code": getattr(exc, "code", None) or "job_failed", "nl": message.nl,
                                   "en": message.en}),
                    Job.expires_at.set(now + KEPT)]
    try:
        storage.claim(job, actions, storage.held(Job.lease_until, lease))
    except Exception:  # noqa: BLE001 - the lease runs out by itself; the schedule resumes it
        logger.exception("job failure not recorded", extra={"job_id": job.id})


def run_stream_records(records: Iterable[dict]) -> int:
    """The jobs table's stream: run each unfinished job inserted or changed (its lease released
    or none yet). Returns how many it ran."""
    ran = 0
    for record in records:
        image = (record.get("dynamodb") or {}).get("NewImage") or {}
        state = (image.get("state") or {}).get("S")
        job_id = (image.get("id") or {}).get("S")
        if record.get("eventName") in ("INSERT", "MODIFY") and state in (JobState.QUEUED, JobState.RUNNING) and job_id \
                and "lease_until" not in image:
            run(job_id)
            ran += 1
    return ran


def resume_stalled(limit: int = 50) -> dict[str, int]:
    """The schedule: unfinished jobs nobody touched for STALLED (a crashed runner, a lost stream
    record). Deployed, nudged (a conditional update, which the stream sees); else run here."""
    now = clock.now()
    result = {"resumed": 0}
    with storage_errors():
        stalled = [key.id for key in Job.by_unfinished.query(
            JOB_UNFINISHED, JobsByUnfinished.updated_at <= clock.stamp(now - STALLED), limit=limit)]
    for job_id in stalled:
        if config.get_settings().job_runner == "stream":
            job = Job(id=job_id)
            if storage.claim(job, [Job.updated_at.set(clock.stamp(now)), Job.lease_until.remove()],
                            Job.state.is_in(JobState.QUEUED, JobState.RUNNING) & storage.free(Job.lease_until, now)):
                result["resumed"] += 1
        else:
            run(job_id)
            result["resumed"] += 1
    return result


# --- `make run`'s runner ---------------------------------------------------------------------------

class _Worker(threading.Thread):
    def __init__(self):
        super().__init__(name="jobs", daemon=True)
        self.queue: queue.Queue = queue.Queue()

    def run(self):
        while True:
            job_id = self.queue.get()
            try:
                run(job_id, budget_seconds=None)
            except Exception:  # noqa: BLE001 - the schedule resumes it
                logger.exception("background job failed", extra={"job_id": job_id})


_worker_thread: _Worker | None = None
_worker_lock = threading.Lock()


def _worker() -> _Worker:
    global _worker_thread
    with _worker_lock:
        if _worker_thread is None:
            _worker_thread = _Worker()
            _worker_thread.start()
    return _worker_thread
