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
    env = {"STAGE": "local", "PORT": "8123"} if value is None else {"STAGE": "local", "PUBLIC_BASE_URL": value}
    settings = config._from_environment(env)
    assert settings.is_local
    assert settings.public_base_url == ("http://127.0.0.1:8123" if value is None else "http://127.0.0.1:8000")


@pytest.mark.parametrize("stage", [None, "", "  "])
def test_a_missing_stage_is_the_safe_deployed_one(stage):
    """Without STAGE nothing local is accepted: no ADMIN_TOKEN from the environment, no default URL."""
    env = {"ADMIN_TOKEN": "from-the-environment", "PUBLIC_BASE_URL": "https://meetups.example.nl"}
    if stage is not None:
        env["STAGE"] = stage
    settings = config._from_environment(env)
    assert settings.stage == "prod" and not settings.is_local
    assert settings.admin_token is None
    assert settings.mail_backend == "ses" and settings.mail_delivery == "stream"
    del env["PUBLIC_BASE_URL"]
    with pytest.raises(RuntimeError, match="PUBLIC_BASE_URL"):
        config._from_environment(env)


def test_the_ses_configuration_set_comes_from_the_environment():
    base = {"STAGE": "local"}
    assert config._from_environment(base).ses_configuration_set is None
    assert config._from_environment(base | {"SES_CONFIGURATION_SET": "klassen-mail"}).ses_configuration_set == \
        "klassen-mail"


def test_the_tests_own_settings_are_read():
    """conftest.py runs the app as STAGE=local with its own PUBLIC_BASE_URL: unaffected."""
    settings = config.get_settings()
    assert settings.stage == os.environ["STAGE"] == "local"
    assert settings.public_base_url == os.environ["PUBLIC_BASE_URL"].rstrip("/")
