"""``make upgrade``'s plan, applied to a table of each earlier release's shape on
DynamoDB Local as CloudFormation would apply each deployment: one index per update,
ending at this version's table (issue 19, item 12)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from devtools.dynamodb_local import DynamoDBLocal
from devtools.template import create_table_requests, load_template
from devtools.upgrade import RELEASES, UpgradeError, indexes_for, plan
from tests.conftest import table_names

TEMPLATE = load_template()
LEAN = {"DidLookup": "false", "CustomerBindIdLookup": "false"}


def definitions(parameters: dict[str, str], name: str) -> dict[str, Any]:
    [request] = [
        r
        for r in create_table_requests(TEMPLATE, {"CallRecordsTable": name, "QuarantineTable": "q"}, parameters)
        if r["TableName"] == name
    ]
    return request


def used(request: dict[str, Any]) -> list[dict[str, str]]:
    """The attribute definitions of the table's and its indexes' keys (DynamoDB refuses others)."""
    keys = {part["AttributeName"] for part in request["KeySchema"]}
    keys |= {
        part["AttributeName"] for index in request.get("GlobalSecondaryIndexes", []) for part in index["KeySchema"]
    }
    return [attribute for attribute in request["AttributeDefinitions"] if attribute["AttributeName"] in keys]


def make_table(client: Any, name: str, indexes: set[str]) -> None:
    """The records table as a release made it: this version's, with only ``indexes``."""
    request = definitions({}, name)
    request["GlobalSecondaryIndexes"] = [g for g in request["GlobalSecondaryIndexes"] if g["IndexName"] in indexes]
    request["AttributeDefinitions"] = used(request)
    request.pop("StreamSpecification", None)
    client.create_table(**request)


def indexes_of(client: Any, name: str) -> set[str]:
    """The table's indexes, one being deleted left out."""
    table = client.describe_table(TableName=name)["Table"]
    return {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", []) if i.get("IndexStatus") != "DELETING"}


def deploy(client: Any, name: str, parameters: dict[str, str]) -> None:
    """What CloudFormation does to the table for one deployment: at most one index
    added or removed, or it fails (DynamoDB takes one index change per update)."""
    wanted = definitions(parameters, name)
    target = {index["IndexName"]: index for index in wanted.get("GlobalSecondaryIndexes", [])}
    existing = indexes_of(client, name)
    changes = existing ^ set(target)
    assert len(changes) <= 1, f"one deployment would change {sorted(changes)}"
    for index in changes:
        update = {"Create": target[index]} if index in target else {"Delete": {"IndexName": index}}
        client.update_table(TableName=name, AttributeDefinitions=used(wanted), GlobalSecondaryIndexUpdates=[update])


@pytest.fixture
def engine() -> Iterator[Any]:
    """A DynamoDB Local of this test's own: it keeps a new index CREATING for minutes and
    takes at most five tables with one at a time."""
    with DynamoDBLocal() as running:
        yield boto3.client("dynamodb", endpoint_url=running.endpoint)


@pytest.mark.parametrize("release", [*RELEASES, "current"])
@pytest.mark.parametrize("wanted", [{}, LEAN], ids=["every lookup", "lean lookups"])
def test_every_earlier_release_upgrades_one_index_per_deployment(engine, release, wanted):
    ddb = engine
    shape = RELEASES.get(release) or indexes_for({})
    # Each deployment on a table of the shape the one before left (DynamoDB Local keeps
    # a new index CREATING for minutes, and takes no second change meanwhile).
    for step in plan(shape, wanted):
        name = table_names()["CallRecordsTable"]
        make_table(ddb, name, shape)
        deploy(ddb, name, step)
        shape = indexes_of(ddb, name)
        assert shape == indexes_for(step)

    assert shape == indexes_for(wanted)


def test_a_single_deployment_from_the_oldest_release_would_fail():
    """Why the upgrade exists: a plain deploy from 0.3.0's table adds one index, from
    0.1.0's two."""
    assert len(indexes_for({}) - RELEASES["0.3.0"]) == 1
    assert len(indexes_for({}) - RELEASES["0.1.0"]) == 2
    assert len(plan(RELEASES["0.1.0"], {})) == 2


def test_a_table_with_an_index_this_version_does_not_know_is_refused():
    with pytest.raises(UpgradeError, match="does not know"):
        plan(indexes_for({}) | {"BySomethingElse"}, {})
