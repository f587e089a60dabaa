"""App processes for the tests that run the roster as deployed: each process imports the app
with its own caches (the meetup hints, connections) against the same DynamoDB Local. The
functions take and return plain values, so they can run in a spawned process."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor


def executors(count: int) -> list[ProcessPoolExecutor]:
    """`count` app processes, one worker each (spawned: nothing shared with this process but the
    environment, which names the tables and DynamoDB Local)."""
    context = multiprocessing.get_context("spawn")
    pools = [ProcessPoolExecutor(max_workers=1, mp_context=context) for _ in range(count)]
    for pool in pools:
        pool.submit(warm_up).result()
    return pools


def warm_up() -> int:
    import os
    import app  # noqa: F401 - the whole app, as a Lambda container imports it
    return os.getpid()


def _payload(n: int, tag: str) -> dict:
    return {"name": f"Deelnemer {n}", "email": f"p{n}-{tag}@example.nl", "role": "teacher", "consent": True}


def _result(kind: str, outcome=None, error=None) -> dict:
    if error is not None:
        return {"kind": kind, "error": getattr(error, "code", type(error).__name__)}
    registration = outcome.registration
    return {"kind": kind, "id": registration.id, "status": registration.status, "position": outcome.position,
            "created": outcome.created, "ticket": int(registration.waitlist_ticket or 0) or None,
            "token": outcome.manage_url.rsplit("/", 1)[1] if outcome.meetup is not None else None}


def sign_up(meetup_id: str, n: int, tag: str, email: str | None = None) -> dict:
    from chalicelib import registration
    from chalicelib.errors import DomainError
    body = _payload(n, tag)
    if email:
        body["email"] = email
    try:
        return _result("sign_up", registration.sign_up(meetup_id, body))
    except DomainError as error:
        return _result("sign_up", error=error)


def cancel(token: str) -> dict:
    from chalicelib import registration
    from chalicelib.errors import DomainError
    try:
        return _result("cancel", registration.cancel(token))
    except DomainError as error:
        return _result("cancel", error=error)


def change_capacity(meetup_id: str, capacity: int) -> dict:
    from chalicelib import catalogue, registration
    from chalicelib.errors import Conflict
    try:
        registration.change_capacity(catalogue.load(meetup_id, consistent=True), capacity)
        while registration.fill_free_seats(meetup_id):  # as the promotions job does after the request
            pass
        return {"kind": "capacity", "capacity": capacity}
    except Conflict as error:
        return {"kind": "capacity", "error": error.code}


def run_jobs(meetup_id: str, jobs: list[tuple], tag: str, threads: int = 8) -> list[dict]:
    """Jobs ("sign_up", n) or ("cancel", token), run by `threads` threads of this process."""
    def one(job):
        kind, value = job
        return sign_up(meetup_id, value, tag) if kind == "sign_up" else cancel(value)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, jobs))
