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


def test_deployed_the_secret_comes_from_ssm_through_powertools(monkeypatch):
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters import base

    local_token = tokens.sign("registration", "m", "r")
    deployed = dataclasses.replace(config.get_settings(), stage="prod", signing_secret=None,
                                   signing_secret_parameter="/klassen-meetups/signing-secret")
    monkeypatch.setattr(tokens, "get_settings", lambda: deployed)
    ssm = boto3.client("ssm", region_name="eu-west-1")
    stubber = Stubber(ssm)
    stubber.add_response("get_parameter", {"Parameter": {"Name": "/klassen-meetups/signing-secret",
                                                         "Type": "SecureString", "Value": "from-ssm"}},
                         {"Name": "/klassen-meetups/signing-secret", "WithDecryption": True})
    monkeypatch.setitem(base.DEFAULT_PROVIDERS, "ssm", parameters.SSMProvider(boto3_client=ssm))
    tokens._secret.cache_clear()
    try:
        with stubber:
            token = tokens.sign("registration", "m", "r")
            assert tokens.verify("registration", token, 2) == ["m", "r"]
        stubber.assert_no_pending_responses()
    finally:
        tokens._secret.cache_clear()
    assert local_token != token, "the SSM secret, not the local one, signed it"
