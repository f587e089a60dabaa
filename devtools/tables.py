"""Create the tables locally from the one definition in infra/resources.json."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

INFRA = Path(__file__).resolve().parent.parent / "infra" / "resources.json"
NAME_PREFIX = "${AWS::StackName}-"


def table_definitions() -> dict[str, dict]:
    """{suffix: CloudFormation table properties}."""
    resources = json.loads(INFRA.read_text())["Resources"]
    tables = {}
    for resource in resources.values():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        suffix = props["TableName"]["Fn::Sub"].removeprefix(NAME_PREFIX)
        tables[suffix] = props
    return tables


def create_table_args(props: dict, name: str) -> dict:
    args = {key: copy.deepcopy(props[key]) for key in
            ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes",
             "LocalSecondaryIndexes") if key in props}
    args["TableName"] = name
    if "StreamSpecification" in props:  # DynamoDB Local has streams too: the outbox's is read as deployed
        args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    return args


def create_tables(prefix: str, client=None) -> list[str]:
    """Create every table that does not exist yet; returns the names created."""
    client = client or boto3.client("dynamodb")
    existing = set(client.get_paginator("list_tables").paginate().build_full_result()["TableNames"])
    created = []
    for suffix, props in table_definitions().items():
        name = prefix + suffix
        if name in existing:
            update_table(client, name, props)  # yesterday's `make run` data: add what was defined since
            continue
        try:
            client.create_table(**create_table_args(props, name))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            continue
        client.get_waiter("table_exists").wait(TableName=name)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        created.append(name)
    return created


def update_table(client, name: str, props: dict) -> list[str]:
    """Give an existing table the indexes and the TTL that infra/resources.json has added since it
    was created, and rebuild an index whose projection changed (one index at a time, as DynamoDB
    allows); returns what was added."""
    added = []
    table = client.describe_table(TableName=name)["Table"]
    have = {index["IndexName"]: index for index in table.get("GlobalSecondaryIndexes", [])}
    types = {d["AttributeName"]: d for d in props["AttributeDefinitions"]}
    for index in props.get("GlobalSecondaryIndexes", []):
        existing = have.get(index["IndexName"])
        if existing is not None and _same_projection(existing["Projection"], index["Projection"]):
            continue
        if existing is not None:  # its projection changed (DynamoDB cannot alter one): build it anew
            client.update_table(TableName=name, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": index["IndexName"]}}])
            _wait_for_indexes(client, name, gone=index["IndexName"])
        definitions = [types[key["AttributeName"]] for key in index["KeySchema"]]
        client.update_table(TableName=name, AttributeDefinitions=definitions,
                            GlobalSecondaryIndexUpdates=[{"Create": copy.deepcopy(index)}])
        _wait_for_indexes(client, name)  # DynamoDB builds one new index at a time
        added.append(index["IndexName"])
    if "StreamSpecification" in props and not table.get("StreamSpecification", {}).get("StreamEnabled"):
        client.update_table(TableName=name, StreamSpecification={"StreamEnabled": True, **props["StreamSpecification"]})
        added.append("stream")
    ttl = props.get("TimeToLiveSpecification")
    if ttl and client.describe_time_to_live(TableName=name)["TimeToLiveDescription"].get(
            "TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        added.append("ttl")
    return added


def _same_projection(have: dict, want: dict) -> bool:
    return (have.get("ProjectionType") == want.get("ProjectionType")
            and sorted(have.get("NonKeyAttributes", [])) == sorted(want.get("NonKeyAttributes", [])))


def _wait_for_indexes(client, name: str, timeout: float = 120.0, gone: str | None = None) -> None:
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        table = client.describe_table(TableName=name)["Table"]
        indexes = table.get("GlobalSecondaryIndexes", [])
        if table["TableStatus"] == "ACTIVE" and all(index.get("IndexStatus", "ACTIVE") == "ACTIVE" for index in indexes) \
                and not any(index["IndexName"] == gone for index in indexes):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the indexes of {name} are still being built: {table['TableStatus']} "
                       f"{[(i['IndexName'], i.get('IndexStatus')) for i in table.get('GlobalSecondaryIndexes', [])]}")


def delete_tables(prefix: str, client=None) -> None:
    client = client or boto3.client("dynamodb")
    for suffix in table_definitions():
        try:
            client.delete_table(TableName=prefix + suffix)
        except ClientError:
            pass
