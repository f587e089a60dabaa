"""Signed link tokens: bound to their purpose, tamper-evident, and keyed deployed by a secret
read from SSM through Powertools Parameters."""
import dataclasses

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib import config, tokens
from chalicelib.errors import NotFound


def test_a_token_gives_back_its_parts():
    token = tokens.sign("registration", "meetup-1", "reg-2")
    assert tokens.verify("registration", token, 2) == ["meetup-1", "reg-2"]


@pytest.mark.parametrize("mangle", [
    lambda t: t.replace(t[-3], "A" if t[-3] != "A" else "B"),
    lambda t: "x" + t,
    lambda t: t.split(".")[0],
    lambda t: "",
    lambda t: t + "." + t,
])
def test_a_tampered_token_is_not_found(mangle):
    token = tokens.sign("registration", "meetup-1", "reg-2")
    with pytest.raises(NotFound):
        tokens.verify("registration", mangle(token), 2)


def test_a_token_for_one_purpose_is_useless_for_another():
    token = tokens.sign("handover", "meetup-1")
    with pytest.raises(NotFound):
        tokens.verify("unsubscribe", token, 1)


def _deployed(monkeypatch):
    deployed = dataclasses.replace(config.get_settings(), stage="prod", signing_secret=None,
                                   signing_secret_parameter="/klassen-meetups/signing-secret")
    monkeypatch.setattr(tokens, "get_settings", lambda: deployed)
    return deployed


def _ssm_answer(value):
    return {"Parameter": {"Name": "/klassen-meetups/signing-secret", "Type": "SecureString", "Value": value}}


def test_deployed_the_secret_comes_from_ssm_through_powertools(monkeypatch):
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters import base

    local_token = tokens.sign("registration", "m", "r")
    _deployed(monkeypatch)
    ssm = boto3.client("ssm", region_name="eu-west-1")
    stubber = Stubber(ssm)
    stubber.add_response("get_parameter", _ssm_answer("from-ssm"),
                         {"Name": "/klassen-meetups/signing-secret", "WithDecryption": True})
    monkeypatch.setitem(base.DEFAULT_PROVIDERS, "ssm", parameters.SSMProvider(boto3_client=ssm))
    with stubber:
        token = tokens.sign("registration", "m", "r")
        assert tokens.verify("registration", token, 2) == ["m", "r"]
    stubber.assert_no_pending_responses()
    assert local_token != token, "the SSM secret, not the local one, signed it"


def test_the_ssm_secret_follows_powertools_max_age_not_the_containers_life(monkeypatch):
    from aws_lambda_powertools.utilities import parameters
    calls = []

    def fake_get_parameter(name, **options):
        calls.append((name, options))
        return "from-ssm"

    _deployed(monkeypatch)
    monkeypatch.setattr(parameters, "get_parameter", fake_get_parameter)
    tokens.verify("registration", tokens.sign("registration", "m", "r"), 2)
    assert len(calls) == 2, "asked every time: Powertools' cache decides, for max_age seconds"
    assert all(options == {"decrypt": True, "max_age": tokens.SECRET_MAX_AGE_SECONDS} for _, options in calls)
    assert 0 < tokens.SECRET_MAX_AGE_SECONDS <= 900


def test_rotating_the_ssm_secret_keeps_valid_links_until_the_old_key_is_dropped(monkeypatch):
    """SSM holds "new old" during a rotation: the new key signs, both verify; then "new" alone."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters import base

    _deployed(monkeypatch)
    ssm = boto3.client("ssm", region_name="eu-west-1")
    provider = parameters.SSMProvider(boto3_client=ssm)
    monkeypatch.setitem(base.DEFAULT_PROVIDERS, "ssm", provider)
    stubber = Stubber(ssm)
    for value in ("old-secret", "new-secret old-secret", "new-secret"):
        stubber.add_response("get_parameter", _ssm_answer(value))
    with stubber:
        old = tokens.sign("registration", "m", "r")
        provider.clear_cache()  # max_age has passed: the next use reads SSM again
        new = tokens.sign("registration", "m", "r")
        assert old.split(".")[0] != new.split(".")[0], "a new key id"
        assert tokens.verify("registration", old, 2) == tokens.verify("registration", new, 2) == ["m", "r"]
        provider.clear_cache()
        assert tokens.verify("registration", new, 2) == ["m", "r"]
        with pytest.raises(NotFound):
            tokens.verify("registration", old, 2)


def test_a_token_carries_its_expiry_and_is_refused_after_it(monkeypatch):
    from datetime import timedelta

    from chalicelib import clock
    from chalicelib.errors import Gone
    now = clock.now()
    token = tokens.sign("registration", "m", "r", expires=now + timedelta(days=3))
    assert tokens.verify("registration", token, 2) == ["m", "r"]
    monkeypatch.setattr(clock, "now", lambda: now + timedelta(days=3, seconds=2))
    with pytest.raises(Gone) as refused:
        tokens.verify("registration", token, 2)
    assert refused.value.status == 410 and refused.value.code == "link_expired"


def test_a_changed_expiry_breaks_the_signature():
    from chalicelib import clock
    token = tokens.sign("registration", "m", "r", expires=clock.now())
    kid, payload, mac = token.split(".")
    forged = tokens._b64(tokens._unb64(payload).replace(b"|m|", b"9|m|", 1))
    with pytest.raises(NotFound):
        tokens.verify("registration", f"{kid}.{forged}.{mac}", 2)


def test_old_tokens_without_expiry_work_until_the_cut_off(monkeypatch):
    from datetime import timedelta

    from chalicelib import clock
    from chalicelib.errors import Gone
    old = tokens.sign_legacy("registration", "m", "r")
    assert old.count(".") == 1
    cut_off = clock.from_storage(config.get_settings().legacy_links_until)
    monkeypatch.setattr(clock, "now", lambda: cut_off - timedelta(minutes=1))
    assert tokens.verify("registration", old, 2) == ["m", "r"]
    monkeypatch.setattr(clock, "now", lambda: cut_off + timedelta(minutes=1))
    with pytest.raises(Gone):
        tokens.verify("registration", old, 2)
