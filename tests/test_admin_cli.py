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
