"""Change events from the real stream: pushes, duplicates, corrections, callbacks joined
with the sync's copies and a deletion write to DynamoDB Local; its stream
(NEW_AND_OLD_IMAGES, the template's filter and batch size, devtools/streams.py) hands the
records to the publisher function, which puts events and lake rows on a moto server on
loopback (as ``make local`` does). Every event validates against the schema, there is
one per change, and each call's latest event shows the item as stored. The calls the
publisher makes are checked against its IAM policy in template.yaml."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient
from nxcloud_cdr import publisher_handler
from nxcloud_cdr.change_events import NumberPolicy, call_of, change_of
from nxcloud_cdr.dynamodb_types import deserialise
from nxcloud_cdr.times import parse_zone

from devtools.dynamodb_local import DynamoDBLocal
from devtools.fake_nxcloud import FakeNxcloud
from devtools.s3_local import LocalS3
from devtools.streams import StreamPump
from devtools.template import StreamSource, load_template
from tests.conftest import PUBLISHER_FUNCTION, SYNC_FUNCTION, event_with_body, load_event
from tests.functional.conftest import stream_pump
from tests.unit.test_change_events import detail_problems
from tests.unit.test_publisher import Sinks

ZONE = parse_zone("+08:00")
# The lake's delivery stream, by the name the template gives it (lake.yaml's stream).
STREAM_ARN_TAIL = "deliverystream/${AWS::StackName}-call-changes"
RESOURCES = load_template()["Resources"]
# botocore's AWS_ENDPOINT_URL_<service id> variables (EventBridge's id is not "events").
ENDPOINT_VARIABLES = ("EVENTBRIDGE", "FIREHOSE", "S3", "SQS", "SECRETS_MANAGER")


@pytest.fixture(scope="session")
def aws_local() -> Iterator[LocalS3]:
    """moto's server: EventBridge, Firehose, S3, SQS, Secrets Manager on loopback."""
    with LocalS3() as server:
        yield server


@pytest.fixture
def sinks(aws_local: LocalS3, push_env, monkeypatch: pytest.MonkeyPatch) -> Sinks:
    for service in ENDPOINT_VARIABLES:
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", aws_local.endpoint)
    tag = uuid.uuid4().hex[:8]
    made = Sinks(bus=f"calls-{tag}", stream=f"call-changes-{tag}", bucket=f"lake-{tag}").create()
    monkeypatch.setenv("EVENT_BUS_NAME", made.bus)
    monkeypatch.setenv("DELIVERY_STREAM_NAME", made.stream)
    monkeypatch.setattr(publisher_handler, "_publisher", None)
    monkeypatch.setattr(publisher_handler, "_settings", None)
    return made


@pytest.fixture
def pump(ddb, sinks: Sinks, dynamodb_local: DynamoDBLocal, push_env, invoke) -> StreamPump:
    return stream_pump(PUBLISHER_FUNCTION, dynamodb_local, push_env["TABLE_NAME"], invoke)


def push(invoke: Any, sample: str, function: str, **changes: Any) -> None:
    event = load_event(sample)
    body = json.loads(event["body"]) | changes
    response = invoke(function, event_with_body(sample, json.dumps(body)) | {"headers": event["headers"]})
    assert response["statusCode"] == 200, response


def write_a_mix(invoke: Any, ddb: Any, table: str, live_nxcloud: FakeNxcloud) -> None:
    """Pushes, NXCLOUD's retries, corrections, callbacks joined by the sync, a deletion."""
    for number in range(5):
        push(invoke, "pns-call-result.json", "PnsCallResultFunction", callId=f"pub-{number}")
    push(invoke, "pns-call-result.json", "PnsCallResultFunction", callId="pub-1")  # a retry: no change
    push(invoke, "pns-call-result.json", "PnsCallResultFunction", callId="pub-2", duration=321)  # a correction
    push(invoke, "pns-binding-not-exist.json", "PnsBindingNotExistFunction")
    push(invoke, "cc-report.json", "CcReportFunction")
    for row in live_nxcloud.records[:4]:  # the callback first, without its recording: the sync joins it
        event = load_event("cc-call-log.json")
        body = json.dumps(row | {"recordUrl": ""})
        assert (
            invoke("CcCallLogFunction", event_with_body("cc-call-log.json", body) | {"headers": event["headers"]})[
                "statusCode"
            ]
            == 200
        )
    assert invoke(SYNC_FUNCTION, load_event("cc-cdr-sync-scheduled.json"))["status"] == "complete"
    ddb.delete_item(TableName=table, Key={"pk": {"S": "ID#pub-4"}, "sk": {"S": "pns_call_result"}})


def stream_records(ddb_endpoint: str, table: str) -> list[dict[str, Any]]:
    """Every record of the table's stream, as Lambda would pass it."""
    records: list[dict[str, Any]] = []
    everything = StreamSource(PUBLISHER_FUNCTION, "CallRecordsTable", 1000, -1, ())
    StreamPump(ddb_endpoint, table, everything, lambda event, _: records.extend(event["Records"]), lambda: None).drain()
    return records


def test_every_change_is_one_valid_event_and_the_latest_shows_the_item(
    invoke, ddb, push_env, pump, sinks, live_nxcloud, dynamodb_local
):
    write_a_mix(invoke, ddb, push_env["TABLE_NAME"], live_nxcloud)

    pump.drain()

    assert pump.given_up == []
    events = sinks.received()
    assert events and all(detail_problems(event["detail"]) == [] for event in events)
    # One event per change: as many as the stream's records that change a call.
    changes = [
        change_of(record, ZONE, NumberPolicy())
        for record in stream_records(dynamodb_local.endpoint, push_env["TABLE_NAME"])
    ]
    made = [change for change in changes if change is not None]
    assert len(events) == len(made)
    assert sorted(event["detail"]["metadata"]["idempotencyKey"] for event in events) == sorted(
        change.idempotency_key for change in made
    )
    assert len({event["detail"]["metadata"]["idempotencyKey"] for event in events}) == len(events)
    types = [event["detail-type"] for event in events]
    assert types.count("Call Record Deleted") == 1 and "Call Record Updated" in types
    # Each call's latest event is the item as stored (none for the deleted one).
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        call = event["detail"]["call"]
        key = (call["kind"], call["call_id"])
        # At one version a removal wins: the sink's order is not the changes' order (the
        # publisher puts side by side).
        rank = (call["record_version"], event["detail-type"] in ("Call Record Expired", "Call Record Deleted"))
        if key not in latest or rank >= latest[key]["rank"]:
            latest[key] = event["detail"] | {"type": event["detail-type"], "rank": rank}
    items = [deserialise(item) for item in ddb.scan(TableName=push_env["TABLE_NAME"])["Items"]]
    stored = {
        (item["sk"], item["pk"][3:]): item
        for item in items
        if item["pk"].startswith("ID#") and not item["sk"].startswith("v#")
    }
    assert set(stored) == {key for key, detail in latest.items() if detail["type"] != "Call Record Deleted"}
    for key, item in stored.items():
        assert latest[key]["call"] == call_of(item, ZONE, NumberPolicy()), key
    # The lake has a row for every event.
    assert sorted(row["event_id"] for row in sinks.rows()) == sorted(
        event["detail"]["metadata"]["eventId"] for event in events
    )


def test_a_redelivered_batch_gives_events_with_the_same_keys(invoke, push_env, pump, sinks, dynamodb_local):
    push(invoke, "pns-call-result.json", "PnsCallResultFunction", callId="again-1")
    pump.drain()
    records = stream_records(dynamodb_local.endpoint, push_env["TABLE_NAME"])

    assert invoke(PUBLISHER_FUNCTION, {"Records": records}) == {"batchItemFailures": []}

    first, second = sinks.received()
    assert first["detail"]["metadata"]["idempotencyKey"] == second["detail"]["metadata"]["idempotencyKey"]
    assert first["detail"]["metadata"]["eventId"] != second["detail"]["metadata"]["eventId"]


# -- the publisher's IAM policy ----------------------------------------------------------


def policy_allows(action: str, resource: Any) -> bool:
    props = RESOURCES[PUBLISHER_FUNCTION]["Properties"]
    for policy in props["Policies"]:
        if "AWSSecretsManagerGetSecretValuePolicy" in policy:
            if (
                action == "secretsmanager:GetSecretValue"
                and policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"] == resource
            ):
                return True
            continue
        for statement in policy.get("Statement", []):
            resources = statement.get("Resource")
            resources = resources if isinstance(resources, list) else [resources]
            if statement["Effect"] == "Allow" and action in statement["Action"] and resource in resources:
                return True
    return False


def test_every_call_of_the_publisher_is_allowed_by_its_policy(invoke, push_env, pump, sinks, monkeypatch):
    import boto3

    salt = boto3.client("secretsmanager").create_secret(Name=f"salt-{uuid.uuid4().hex}", SecretString="s" * 64)
    monkeypatch.setenv("PHONE_NUMBERS", "hashed")
    monkeypatch.setenv("PHONE_NUMBER_SALT_SECRET_ID", salt["ARN"])
    made: list[tuple[str, str, dict[str, Any]]] = []
    real = BaseClient._make_api_call  # type: ignore[attr-defined]  # botocore's stubs leave it out

    def record(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        made.append((self.meta.service_model.service_name, operation, params))
        return real(self, operation, params)

    push(invoke, "pns-call-result.json", "PnsCallResultFunction", callId="iam-1")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", record)
        pump.drain()

    # The stream pump's own reads are Lambda's, not the function's.
    own = [(service, operation, params) for service, operation, params in made if service != "dynamodbstreams"]
    template_env = RESOURCES[PUBLISHER_FUNCTION]["Properties"]["Environment"]["Variables"]
    # What each call names is the resource the template gives the function.
    by_resource = {
        ("events", "PutEvents"): ("events:PutEvents", {"Fn::GetAtt": ["ChangeEventBus", "Arn"]}),
        ("firehose", "PutRecordBatch"): (
            "firehose:PutRecordBatch",
            {"Fn::Sub": "arn:${AWS::Partition}:firehose:${AWS::Region}:${AWS::AccountId}:" + STREAM_ARN_TAIL},
        ),
        ("secretsmanager", "GetSecretValue"): ("secretsmanager:GetSecretValue", {"Ref": "PhoneNumberSaltSecret"}),
    }
    assert {(service, operation) for service, operation, _ in own} == set(by_resource)
    for service, operation, _params in own:
        action, resource = by_resource[(service, operation)]
        assert policy_allows(action, resource), (service, operation)
    assert template_env["EVENT_BUS_NAME"] == {"Ref": "ChangeEventBus"}
    assert template_env["PHONE_NUMBER_SALT_SECRET_ID"] == {"Ref": "PhoneNumberSaltSecret"}
    lake_on, stream_name, no_lake = template_env["DELIVERY_STREAM_NAME"]["Fn::If"]
    # The lake's stream, by the nested stack's output (the function waits for it); the
    # policy's ARN above names it as lake.yaml does (tests/unit/test_lake_template.py).
    assert (lake_on, stream_name, no_lake) == ("LakeOn", {"Fn::GetAtt": ["Lake", "Outputs.DeliveryStreamName"]}, "")
    # Lambda sends what it gives up on to the queue with the function's role, and reads this stream alone.
    source = RESOURCES[PUBLISHER_FUNCTION]["Properties"]["Events"]["Stream"]["Properties"]
    queue = source["DestinationConfig"]["OnFailure"]["Destination"]
    assert policy_allows("sqs:SendMessage", queue) and queue == {"Fn::GetAtt": ["ChangeEventFailuresQueue", "Arn"]}
    [deny] = [
        s
        for p in RESOURCES[PUBLISHER_FUNCTION]["Properties"]["Policies"]
        for s in p.get("Statement", [])
        if s["Effect"] == "Deny"
    ]
    assert deny["NotResource"] == source["Stream"] == {"Fn::GetAtt": ["CallRecordsTable", "StreamArn"]}
