"""The tables are defined once, in infra/resources.json: the PynamoDB models, and the tables
devtools/tables.py creates in DynamoDB Local, must agree with it."""
from __future__ import annotations

import inspect
import os
from collections import defaultdict

import boto3
import pytest
from pynamodb.attributes import TTLAttribute
from pynamodb.indexes import GlobalSecondaryIndex, Index, LocalSecondaryIndex

from devtools import tables

INFRA = tables.table_definitions()  # {suffix: CloudFormation table properties}
# Tables that no PynamoDB model reads: Powertools' idempotency layer owns this one.
WITHOUT_MODEL = {"idempotency"}


def _keys(key_schema) -> dict[str, str]:
    return {k["KeyType"]: k["AttributeName"] for k in key_schema}


def _types(definitions) -> dict[str, str]:
    return {d["AttributeName"]: d["AttributeType"] for d in definitions}


def _indexes(props: dict, kind: str) -> dict[str, dict]:
    return {i["IndexName"]: {"keys": _keys(i["KeySchema"]), "projection": i["Projection"]["ProjectionType"]}
            for i in props.get(kind, [])}


def _models_by_suffix() -> dict[str, list]:
    from chalicelib.models import ALL_MODELS

    prefix = os.environ["TABLE_PREFIX"]
    grouped = defaultdict(list)
    for model in ALL_MODELS:
        name = model.Meta.table_name
        assert name.startswith(prefix), f"{model.__name__}: table {name!r} lacks TABLE_PREFIX {prefix!r}"
        grouped[name.removeprefix(prefix)].append(model)
    return dict(grouped)


def _model_keys(model) -> tuple[dict[str, str], dict[str, str]]:
    """({HASH|RANGE: attribute name}, {attribute name: S|N|B}) of a model's table key."""
    keys, types = {}, {}
    for attribute in model.get_attributes().values():
        if attribute.is_hash_key or attribute.is_range_key:
            keys["HASH" if attribute.is_hash_key else "RANGE"] = attribute.attr_name
            types[attribute.attr_name] = attribute.attr_type
    return keys, types


def _model_indexes(model) -> list[Index]:
    return [value for _, value in inspect.getmembers(model) if isinstance(value, Index)]


def _index_keys(index: Index) -> tuple[dict[str, str], dict[str, str]]:
    keys, types = {}, {}
    for attribute in index.Meta.attributes.values():
        if attribute.is_hash_key or attribute.is_range_key:
            keys["HASH" if attribute.is_hash_key else "RANGE"] = attribute.attr_name
            types[attribute.attr_name] = attribute.attr_type
    return keys, types


def test_every_model_has_its_table_and_every_table_its_model():
    by_suffix = _models_by_suffix()
    assert set(by_suffix) - set(INFRA) == set(), "models whose table infra/resources.json lacks"
    assert set(INFRA) - set(by_suffix) == WITHOUT_MODEL, "tables without a model"
    assert len(by_suffix["registrations"]) >= 2, "Registration and EmailGuard share one table"


@pytest.mark.parametrize("suffix", sorted(set(INFRA) - WITHOUT_MODEL))
def test_models_agree_with_infra(suffix):
    props = INFRA[suffix]
    infra_keys = _keys(props["KeySchema"])
    infra_types = _types(props["AttributeDefinitions"])
    models = _models_by_suffix()[suffix]
    used_types = {}
    model_gsis, model_lsis = {}, {}
    for model in models:
        keys, types = _model_keys(model)
        assert keys == infra_keys, f"{model.__name__}: key {keys} but infra has {infra_keys}"
        used_types.update(types)
        for index in _model_indexes(model):
            index_keys, index_types = _index_keys(index)
            used_types.update(index_types)
            entry = {"keys": index_keys, "projection": index.Meta.projection.projection_type}
            if isinstance(index, GlobalSecondaryIndex):
                model_gsis[index.Meta.index_name] = entry
            else:
                assert isinstance(index, LocalSecondaryIndex)
                assert index_keys["HASH"] == infra_keys["HASH"], "a local index shares the table's hash key"
                model_lsis[index.Meta.index_name] = entry
    for name, kind in used_types.items():
        assert infra_types.get(name) == kind, f"{suffix}.{name}: model says {kind}, infra {infra_types.get(name)}"
    assert set(infra_types) == set(used_types), "infra defines exactly the key attributes the models use"
    assert model_gsis == _indexes(props, "GlobalSecondaryIndexes")
    assert model_lsis == _indexes(props, "LocalSecondaryIndexes")

    ttl_names = {attribute.attr_name for model in models for attribute in model.get_attributes().values()
                 if isinstance(attribute, TTLAttribute)}
    infra_ttl = props.get("TimeToLiveSpecification")
    if ttl_names:
        assert infra_ttl == {"AttributeName": ttl_names.pop(), "Enabled": True} and not ttl_names
    else:
        assert infra_ttl is None, f"{suffix}: TTL on {infra_ttl['AttributeName']} but no TTLAttribute"


def test_idempotency_table_fits_powertools_defaults():
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    defaults = inspect.signature(DynamoDBPersistenceLayer.__init__).parameters
    props = INFRA["idempotency"]
    assert _keys(props["KeySchema"]) == {"HASH": defaults["key_attr"].default}
    assert _types(props["AttributeDefinitions"]) == {defaults["key_attr"].default: "S"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": defaults["expiry_attr"].default, "Enabled": True}


@pytest.mark.parametrize("suffix", sorted(INFRA))
def test_local_tables_match_infra(suffix):
    client = boto3.client("dynamodb")
    name = os.environ["TABLE_PREFIX"] + suffix
    table = client.describe_table(TableName=name)["Table"]
    props = INFRA[suffix]
    assert _keys(table["KeySchema"]) == _keys(props["KeySchema"])
    assert _types(table["AttributeDefinitions"]) == _types(props["AttributeDefinitions"])
    assert _indexes(table, "GlobalSecondaryIndexes") == _indexes(props, "GlobalSecondaryIndexes")
    assert _indexes(table, "LocalSecondaryIndexes") == _indexes(props, "LocalSecondaryIndexes")
    assert table.get("BillingModeSummary", {}).get("BillingMode") == props["BillingMode"]
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if "TimeToLiveSpecification" in props:
        assert ttl["TimeToLiveStatus"] == "ENABLED"
        assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]
    else:
        assert ttl["TimeToLiveStatus"] == "DISABLED"


@pytest.mark.slow
def test_tables_made_before_an_index_or_ttl_was_added_get_them():
    """`make run` keeps yesterday's tables: create_tables adds what infra/resources.json added since.
    On a DynamoDB Local of its own: the session's one, busy with the end-to-end service, can take
    minutes to finish building an index."""
    import copy

    from devtools import dynamodb_local

    own = dynamodb_local.start()
    try:
        client = boto3.client("dynamodb", endpoint_url=own.endpoint, region_name="eu-west-1",
                              aws_access_key_id="local", aws_secret_access_key="local")
        props = copy.deepcopy(INFRA["registrations"])
        old = dict(props, AttributeDefinitions=[d for d in props["AttributeDefinitions"]
                                                if d["AttributeName"] in ("meetup_id", "sk")])
        old.pop("GlobalSecondaryIndexes")
        name = "old-registrations"
        client.create_table(**tables.create_table_args(old, name))
        client.get_waiter("table_exists").wait(TableName=name)
        assert sorted(tables.update_table(client, name, props)) == ["by_email", "by_erasure", "ttl"]
        table = client.describe_table(TableName=name)["Table"]
        assert _indexes(table, "GlobalSecondaryIndexes") == _indexes(props, "GlobalSecondaryIndexes")
        assert client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
        assert tables.update_table(client, name, props) == [], "a second time: nothing to add"

        # An index whose projection changed since (the tour's `by_start` once projected ALL) is rebuilt.
        meetups = copy.deepcopy(INFRA["meetups"])
        before = copy.deepcopy(meetups)
        for index in before["GlobalSecondaryIndexes"]:
            if index["IndexName"] == "by_start":
                index["Projection"] = {"ProjectionType": "ALL"}
        client.create_table(**tables.create_table_args(before, "old-meetups"))
        client.get_waiter("table_exists").wait(TableName="old-meetups")
        client.put_item(TableName="old-meetups", Item={"id": {"S": "m1"}, "listing": {"S": "tour"},
                                                        "starts_at": {"S": "2027-04-12T19:00:00Z"}})
        assert tables.update_table(client, "old-meetups", meetups) == ["by_start"]
        table = client.describe_table(TableName="old-meetups")["Table"]
        assert _indexes(table, "GlobalSecondaryIndexes") == _indexes(meetups, "GlobalSecondaryIndexes")
        rebuilt = client.query(TableName="old-meetups", IndexName="by_start", KeyConditionExpression="listing = :l",
                               ExpressionAttributeValues={":l": {"S": "tour"}})["Items"]
        assert [item["id"]["S"] for item in rebuilt] == ["m1"]
    finally:
        own.stop()
