"""End-to-end support: the real service, started as `make run` starts it (`python -m devtools.run`),
in a subprocess against the test session's DynamoDB Local, under a fresh table prefix, on a free
port. Stopped with Ctrl-C (SIGINT to its process group), as a developer stops it.

Test modules load this as a plugin, `pytest_plugins = ["tests.e2e_support"]`, so that the
session-scoped `live_service` fixture is one service for all of them (importing the fixture into
each module instead would start one service per module).
"""
from __future__ import annotations

import email
import email.policy
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from devtools.dynamodb_local import free_port

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 30
# Set by conftest for in-process tests; the live service must use its own defaults instead
# (background mail delivery; links to its own address; the signing secret kept in DATA_DIR).
_NOT_INHERITED = ("MAIL_DELIVERY", "PUBLIC_BASE_URL", "SIGNING_SECRET", "PORT")


@dataclass
class ServiceProcess:
    """One `python -m devtools.run` subprocess."""
    process: subprocess.Popen
    base_url: str
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_until_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"`python -m devtools.run` exited with {self.process.returncode} "
                                   f"before serving:\n{self.log()}")
            try:
                answer = requests.get(f"{self.base_url}/meetups", timeout=5)
                if answer.status_code == 200:
                    return
                last_error = f"HTTP {answer.status_code}: {answer.text[:300]}"
            except requests.RequestException as exc:
                last_error = repr(exc)
            time.sleep(0.25)
        self.kill()
        raise RuntimeError(f"the service did not answer GET /meetups with 200 within {timeout} s "
                           f"(last: {last_error}):\n{self.log()}")

    def interrupt(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """Ctrl-C: SIGINT to the whole process group. The exit code, or None if it did not stop in time."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()


def start_service(*, prefix: str, admin_token: str, mail_dir: Path, data_dir: Path,
                  port: int | None = None) -> ServiceProcess:
    """Start `python -m devtools.run` (not yet waited for) with the environment `make run` honours."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    if not env.get("AWS_ENDPOINT_URL_DYNAMODB"):
        raise RuntimeError("AWS_ENDPOINT_URL_DYNAMODB is not set: conftest starts DynamoDB Local first")
    env.update({
        "STAGE": "local",
        "PORT": str(port),
        "TABLE_PREFIX": prefix,
        "ADMIN_TOKEN": admin_token,
        "MAIL_BACKEND": "file",
        "MAIL_DIR": str(mail_dir),
        "DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
    })
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"run-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "devtools.run"], cwd=ROOT, env=env,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return ServiceProcess(process=process, base_url=f"http://127.0.0.1:{port}", port=port, log_path=log_path)


def read_mail(mail_dir: Path, address: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(mail_dir.glob("*.eml")) if mail_dir.exists() else []:
        try:
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        except Exception:  # a file being written right now; read it next time
            continue
        if address.lower() in str(message["To"] or "").lower():
            found.append(message)
    return found


@dataclass
class LiveService:
    base_url: str
    admin_token: str
    mail_dir: Path
    prefix: str
    data_dir: Path
    service: ServiceProcess = field(repr=False)

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    @property
    def admin_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.admin_token}", "Content-Type": "application/json"}

    def wait_for_mail(self, address: str, count: int = 1, timeout: float = 10.0) -> list[email.message.EmailMessage]:
        """Mail goes out on a background thread: poll MAIL_DIR until `count` messages to `address` are there."""
        deadline = time.monotonic() + timeout
        while True:
            found = read_mail(self.mail_dir, address)
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.1)


@pytest.fixture(scope="session")
def live_service(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    mail_dir, data_dir = workdir / "mail", workdir / "data"
    mail_dir.mkdir()
    prefix = f"e2e-{secrets.token_hex(3)}-"
    admin_token = "e2e-admin-" + secrets.token_hex(12)
    service = start_service(prefix=prefix, admin_token=admin_token, mail_dir=mail_dir, data_dir=data_dir)
    service.wait_until_ready()
    try:
        yield LiveService(base_url=service.base_url, admin_token=admin_token, mail_dir=mail_dir,
                          prefix=prefix, data_dir=data_dir, service=service)
    finally:
        code = service.interrupt()
        if code is None:
            service.kill()
        assert code is not None, f"the service did not stop within {STOP_TIMEOUT_SECONDS} s of Ctrl-C:\n{service.log()}"
        assert code == 0, f"the service exited with {code} after Ctrl-C:\n{service.log()}"
