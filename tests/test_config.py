"""Settings from the environment: a deployed stage has no default for the base of the links in emails."""
from __future__ import annotations

import os

import pytest

from chalicelib import config


@pytest.mark.parametrize("value", [None, "", "   "])
@pytest.mark.parametrize("stage", ["prod", "staging"])
def test_a_deployed_stage_refuses_a_missing_public_base_url(stage, value):
    env = {"STAGE": stage, "TABLE_PREFIX": "klassen-meetups-"}
    if value is not None:
        env["PUBLIC_BASE_URL"] = value
    with pytest.raises(RuntimeError, match="PUBLIC_BASE_URL") as error:
        config._from_environment(env)
    assert "PublicBaseUrl" in str(error.value), "names the stack parameter that sets it"


def test_a_deployed_stage_takes_the_url_without_its_trailing_slash():
    settings = config._from_environment({"STAGE": "prod", "PUBLIC_BASE_URL": "https://meetups.example.nl/api/"})
    assert settings.public_base_url == "https://meetups.example.nl/api"
    assert settings.mail_delivery == "stream"


@pytest.mark.parametrize("value", [None, ""])
def test_the_local_stage_defaults_to_the_local_server(value):
    env = {"PORT": "8123"} if value is None else {"STAGE": "local", "PUBLIC_BASE_URL": value}
    settings = config._from_environment(env)
    assert settings.is_local
    assert settings.public_base_url == ("http://127.0.0.1:8123" if value is None else "http://127.0.0.1:8000")


def test_the_tests_own_settings_are_read():
    """conftest.py runs the app as STAGE=local with its own PUBLIC_BASE_URL: unaffected."""
    settings = config.get_settings()
    assert settings.stage == os.environ["STAGE"] == "local"
    assert settings.public_base_url == os.environ["PUBLIC_BASE_URL"].rstrip("/")
