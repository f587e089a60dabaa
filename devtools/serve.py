"""Serve the Chalice app locally as `chalice local` does (same LocalGateway, routing and
authorizers), on a server that stands a sign-up rush: `chalice local`'s listen backlog of 5
resets connections under load, and it never fires `@app.schedule`, so the scheduled jobs
run here on timers instead."""
from __future__ import annotations

import os
import socketserver
import threading
from http.server import HTTPServer

from chalice.local import ChaliceRequestHandler, LocalDevServer

from chalicelib.observability import logger


class RushReadyHTTPServer(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog
    allow_reuse_address = True


class QuietHandler(ChaliceRequestHandler):
    """Every connection gets a thread, but only a few requests run the app at once: DynamoDB
    Local slows down sharply with many concurrent transactions, and one Python process gains
    nothing from more threads than it can feed. The rest wait their turn in order."""

    in_app = threading.BoundedSemaphore(int(os.environ.get("LOCAL_APP_CONCURRENCY", "12")))
    timeout = 30  # an idle keep-alive connection is closed after this

    def _generic_handle(self) -> None:
        with self.in_app:
            super()._generic_handle()

    def log_message(self, format, *args):  # one line per request is noise under a rush
        pass


def build_server(host: str, port: int, stage: str = "dev") -> LocalDevServer:
    from pathlib import Path

    from chalice.cli.factory import CLIFactory
    from chalice.local import CustomLocalChalice, LocalChalice

    factory = CLIFactory(project_dir=str(Path(__file__).resolve().parent.parent))
    config = factory.create_config_obj(chalice_stage_name=stage)
    app = config.chalice_app
    # As chalice.local.create_local_server does: a thread-local current_request per request.
    if not isinstance(app, LocalChalice):
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    return LocalDevServer(app, config, host, port, handler_cls=QuietHandler, server_cls=RushReadyHTTPServer)


class Every(threading.Thread):
    """Runs `job` every `seconds` until stopped; a failing run is logged and retried next time."""

    def __init__(self, name: str, seconds: float, job):
        super().__init__(name=name, daemon=True)
        self.seconds, self.job, self.stopped = seconds, job, threading.Event()

    def run(self):
        while not self.stopped.wait(self.seconds):
            try:
                self.job()
            except Exception:
                logger.exception("scheduled job failed", extra={"job": self.name})


def scheduled_jobs() -> list[Every]:
    """The app's schedules, on timers: what EventBridge does when deployed."""
    import app as app_module
    jobs = []
    for name, seconds in LOCAL_SCHEDULES:
        handler = getattr(app_module, name, None)
        if handler is not None:
            jobs.append(Every(name, seconds, lambda handler=handler: handler.func(None)))
    return jobs


# (function in app.py, seconds between runs locally)
LOCAL_SCHEDULES = [("retry_outbox", 60), ("send_digests", 300), ("apply_retention", 3600)]
