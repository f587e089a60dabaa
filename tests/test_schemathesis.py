"""A bounded Schemathesis run against the service as `make run` serves it (tests/e2e_support.py),
with every check on: no 5xx, no status, content type, header or body outside chalicelib/openapi.json,
invalid input refused, valid input accepted, undeclared methods answered 405 with `Allow`, and the
admin routes both with the admin token and without it (`ignored_auth`: 401). Settings, bounds and
the few documented exceptions are in tests/schemathesis.toml; deterministic, about a minute."""
from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e_support import STOP_TIMEOUT_SECONDS, start_service

CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"
TIME_LIMIT_SECONDS = 240  # a hung run fails the test instead of the suite


@pytest.fixture(scope="module")
def fuzzed_service(tmp_path_factory):
    """A service of its own, as `make run` starts it: what the fuzzer stores (and any data that a
    bug lets in) stays away from the shared `live_service` of the other end-to-end tests."""
    workdir = tmp_path_factory.mktemp("fuzzed")
    token = "fuzz-admin-" + secrets.token_hex(12)
    service = start_service(prefix=f"fuzz-{secrets.token_hex(3)}-", admin_token=token,
                            mail_dir=workdir / "mail", data_dir=workdir / "data")
    service.wait_until_ready()
    try:
        yield service, token
    finally:
        if service.interrupt(STOP_TIMEOUT_SECONDS) is None:
            service.kill()


@pytest.mark.slow
def test_schemathesis_finds_nothing(fuzzed_service, tmp_path):
    service, token = fuzzed_service
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
               f"{service.base_url}/openapi.json", "--header", f"Authorization: Bearer {token}",
               "--no-color", "--output-truncate", "false",
               "--report", "junit", "--report-dir", str(tmp_path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT_SECONDS,
                         cwd=tmp_path)  # its cache and reports stay out of the work tree
    output = run.stdout + run.stderr
    (tmp_path / "schemathesis.log").write_text(output)
    assert "Tested: " in output, output[-3000:]
    assert run.returncode == 0, f"Schemathesis found problems (log: {tmp_path / 'schemathesis.log'}):\n{output[-20000:]}"
