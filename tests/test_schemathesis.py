"""A bounded Schemathesis run against the service as `make run` serves it (tests/e2e_support.py),
with every check on: no 5xx, no status, content type, header or body outside chalicelib/openapi.json,
invalid input refused, valid input accepted, undeclared methods answered 405 with `Allow`, and the
admin routes both with the admin token and without it (`ignored_auth`: 401). Settings, bounds and
the few documented exceptions are in tests/schemathesis.toml; deterministic, about a minute."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["tests.e2e_support"]

CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"
TIME_LIMIT_SECONDS = 240  # a hung run fails the test instead of the suite


@pytest.mark.slow
def test_schemathesis_finds_nothing(live_service, tmp_path):
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
               live_service.url("/openapi.json"),
               "--header", f"Authorization: Bearer {live_service.admin_token}",
               "--no-color", "--output-truncate", "false",
               "--report", "junit", "--report-dir", str(tmp_path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=TIME_LIMIT_SECONDS,
                         cwd=tmp_path)  # its cache and reports stay out of the work tree
    output = run.stdout + run.stderr
    (tmp_path / "schemathesis.log").write_text(output)
    assert "Selected: 26/26" in output, output[-3000:]
    assert run.returncode == 0, f"Schemathesis found problems (log: {tmp_path / 'schemathesis.log'}):\n{output[-20000:]}"
