"""Test set-up: one DynamoDB Local in memory for the session (unless AWS_ENDPOINT_URL_DYNAMODB
points at one), tables created from infra/resources.json under a fresh prefix."""
from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools import dynamodb_local, tables  # noqa: E402

ADMIN_TOKEN = "test-admin-token-" + secrets.token_hex(8)
_DDB = None


def pytest_configure(config):
    """Runs before any test module imports the app: settings are read once, from here."""
    global _DDB
    if not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        _DDB = dynamodb_local.start()
        os.environ.update(dynamodb_local.local_aws_environment(_DDB.endpoint))
    else:
        os.environ.update(dynamodb_local.local_aws_environment(os.environ["AWS_ENDPOINT_URL_DYNAMODB"]))
    mail_dir = tempfile.mkdtemp(prefix="klassen-mail-")
    os.environ.update({
        "STAGE": "local",
        "TABLE_PREFIX": f"test-{secrets.token_hex(4)}-",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "MAIL_BACKEND": "file",
        "MAIL_DELIVERY": "inline",  # mail is sent within the request, so tests can read it at once
        "MAIL_DIR": mail_dir,
        "SIGNING_SECRET": "test-signing-secret",
        "PUBLIC_BASE_URL": "http://testserver",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    })
    tables.create_tables(os.environ["TABLE_PREFIX"])


def pytest_unconfigure(config):
    if _DDB is not None:
        _DDB.stop()


@pytest.fixture(scope="session")
def app():
    import app as app_module
    return app_module.app


@pytest.fixture
def client(app):
    from chalice.test import Client
    with Client(app, project_dir=str(ROOT), stage_name="dev") as chalice_client:
        yield chalice_client


@pytest.fixture
def admin_headers():
    return {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def empty_tables():
    """For tests that need to see the whole of a table: empties every table first."""
    import boto3
    client = boto3.client("dynamodb")
    prefix = os.environ["TABLE_PREFIX"]
    for suffix, props in tables.table_definitions().items():
        keys = [k["AttributeName"] for k in props["KeySchema"]]
        name = prefix + suffix
        for page in client.get_paginator("scan").paginate(TableName=name, ProjectionExpression=", ".join(f"#{i}" for i in range(len(keys))),
                                                          ExpressionAttributeNames={f"#{i}": k for i, k in enumerate(keys)}):
            for item in page["Items"]:
                client.delete_item(TableName=name, Key=item)
    yield


@pytest.fixture
def bulk_roster():
    """`bulk_roster(meetup, confirmed=, waiting=, cancelled=)`: bench.bulk.load_roster, with the
    thousands of items deleted again afterwards (other tests empty or read whole tables)."""
    from bench.bulk import load_roster
    from chalicelib.models import WAITLIST_PREFIX, Registration, WaitlistEntry, line_partition
    loaded = []

    def load(meetup, **counts):
        made = load_roster(meetup, **counts)
        loaded.append((meetup, made))
        return made

    yield load
    with Registration.batch_write() as batch:
        for meetup, made in loaded:
            for people in made.values():
                for person in people:
                    batch.delete(person)
    for meetup, _ in loaded:
        with WaitlistEntry.batch_write() as batch:
            for entry in WaitlistEntry.query(line_partition(meetup.id), WaitlistEntry.sk.startswith(WAITLIST_PREFIX)):
                batch.delete(entry)
