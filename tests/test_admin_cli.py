"""`python -m chalicelib.admin`, run as an operator runs it: create-token prints the token, and only
the token, on stdout (TOKEN="$(python -m chalicelib.admin create-token NAME)"); logs go to stderr."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib import auth
from chalicelib.errors import Unauthorized

ROOT = Path(__file__).resolve().parent.parent


def admin(*args: str) -> subprocess.CompletedProcess:
    # The test environment (conftest.py: DynamoDB Local, TABLE_PREFIX, ...) with the logs on, so
    # that a log line on stdout would show.
    env = {**os.environ, "POWERTOOLS_LOG_LEVEL": "INFO"}
    return subprocess.run([sys.executable, "-m", "chalicelib.admin", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_create_token_prints_only_the_token_and_revoke_token_revokes_it():
    created = admin("create-token", "CLI test admin")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert len(lines) == 1 and created.stdout == lines[0] + "\n", created.stdout
    token = lines[0]
    assert token.startswith(auth.TOKEN_PREFIX) and len(token) > 40 and " " not in token
    assert "admin token created" in created.stderr, "the log line goes to stderr"
    assert token not in created.stderr
    assert auth.authenticate({"authorization": f"Bearer {token}"}) == "CLI test admin"

    revoked = admin("revoke-token", token)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout == "revoked\n"
    with pytest.raises(Unauthorized):
        auth.authenticate({"authorization": f"Bearer {token}"})

    again = admin("revoke-token", token)
    assert again.returncode == 1
    assert again.stdout == "" and "no such token" in again.stderr


# --- against `make run`'s database, as the README gives the command -----------------------------

pytest_plugins = ["tests.e2e_support"]

_LOCAL_ONLY = ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
               "TABLE_PREFIX", "STAGE", "DATA_DIR", "AWS_REGION", "AWS_PROFILE")


def bare_admin(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The command as a newcomer types it in a second terminal: none of the test's DynamoDB settings."""
    clean = {k: v for k, v in os.environ.items() if k not in _LOCAL_ONLY}
    clean.update(env)
    return subprocess.run([sys.executable, "-m", "chalicelib.admin", *args], cwd=ROOT, env=clean,
                          capture_output=True, text=True, timeout=60)


def test_create_token_finds_the_database_of_a_running_make_run(live_service):
    import requests
    created = bare_admin("create-token", "README reader", DATA_DIR=str(live_service.data_dir))
    assert created.returncode == 0, created.stderr
    assert "Traceback" not in created.stderr
    token = created.stdout.strip()
    assert token.startswith(auth.TOKEN_PREFIX)
    answer = requests.get(live_service.url("/admin/organisers"), timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert bare_admin("revoke-token", token, DATA_DIR=str(live_service.data_dir)).stdout == "revoked\n"


def test_without_a_local_database_it_says_so_in_one_line(tmp_path):
    nothing = bare_admin("create-token", "x", DATA_DIR=str(tmp_path), STAGE="local")
    assert nothing.returncode == 2 and nothing.stdout == ""
    assert "Traceback" not in nothing.stderr and len(nothing.stderr.strip().splitlines()) == 1, nothing.stderr
    assert "make run" in nothing.stderr

    (tmp_path / "local-environment.json").write_text(
        '{"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "local", '
        '"AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "eu-west-1", "STAGE": "local"}')
    stale = bare_admin("create-token", "x", DATA_DIR=str(tmp_path))  # make run was killed: nobody answers
    assert stale.returncode == 1 and stale.stdout == ""
    assert "Traceback" not in stale.stderr and len(stale.stderr.strip().splitlines()) == 1, stale.stderr
    assert "http://127.0.0.1:9" in stale.stderr
