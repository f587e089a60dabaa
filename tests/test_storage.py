"""Storage mechanics: nothing is read or connected at import; one connection serves every model."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_PROBE = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from chalicelib import config

    def refuse(*args, **kwargs):
        raise AssertionError("the settings were read at import")

    config.get_settings = refuse
    from pynamodb.connection import base
    real_init = base.Connection.__init__

    def no_connection(self, *args, **kwargs):
        raise AssertionError("a connection was made at import")

    base.Connection.__init__ = no_connection
    import {module}
    base.Connection.__init__ = real_init
    print("imported")
""")


@pytest.mark.parametrize("module", ["chalicelib.models", "chalicelib.storage", "app"])
def test_importing_reads_no_settings_and_makes_no_connection(module):
    """A fresh interpreter without any of the service's settings in its environment imports the
    models, the storage and the whole app: the settings are read, and the connection made, on
    first use (with STAGE unset and no PUBLIC_BASE_URL, reading the settings would fail too)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("STAGE", "TABLE_PREFIX", "PUBLIC_BASE_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_REGION",
                          "AWS_DEFAULT_REGION", "ADMIN_TOKEN", "SIGNING_SECRET", "MAIL_BACKEND", "MAIL_DELIVERY")}
    result = subprocess.run([sys.executable, "-c", _PROBE.format(root=str(ROOT), module=module)],
                            cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


def test_the_models_table_names_follow_the_settings(monkeypatch):
    """Table names are read when used: a changed TABLE_PREFIX (with the settings read again) is
    the table the model uses next."""
    from chalicelib import config
    from chalicelib.models import Meetup
    before = Meetup.Meta.table_name
    monkeypatch.setenv("TABLE_PREFIX", "elsewhere-")
    config.get_settings.cache_clear()
    try:
        assert Meetup.Meta.table_name == "elsewhere-meetups"
        assert Meetup._get_connection().table_name == "elsewhere-meetups"
    finally:
        monkeypatch.undo()
        config.get_settings.cache_clear()
    assert Meetup.Meta.table_name == before


def test_one_connection_serves_every_model_and_every_transaction():
    from chalicelib import storage
    from chalicelib.models import ALL_MODELS
    shared = storage.connection()
    assert all(model._get_connection().connection is shared for model in ALL_MODELS)
    assert storage.Transaction()._tx._connection is shared
