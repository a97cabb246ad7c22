"""The operator tool's parsing and rendering (its commands run end to end in tests/e2e)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from nxcloud_cdr.cli import build_parser, parse_time, render_table


def test_times_absolute_and_relative():
    assert parse_time("2023-11-17T05:42:30Z") == datetime(2023, 11, 17, 5, 42, 30, tzinfo=UTC)
    assert parse_time("2023-11-17") == datetime(2023, 11, 17, tzinfo=UTC)  # naive is UTC
    assert parse_time("2023-11-17T13:42:30+08:00") == datetime(2023, 11, 17, 5, 42, 30, tzinfo=UTC)
    ago = datetime.now(tz=UTC) - parse_time("36h")
    assert timedelta(hours=35, minutes=59) < ago < timedelta(hours=36, minutes=1)
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_table_keeps_ids_whole_and_cuts_long_messages():
    long_id = "pns_call_result#" + "a" * 64
    text = render_table([{"pk": long_id, "message": "m" * 100, "attempts": 2}], ["pk", "message", "attempts"])

    header, rule, row = text.splitlines()
    assert header.split() == ["pk", "message", "attempts"]
    assert long_id in row and ("m" * 57 + "...") in row and "m" * 58 not in row
    assert set(rule.replace(" ", "")) == {"-"}


def test_commands_and_their_required_arguments():
    parser = build_parser()
    assert parser.parse_args(["--json", "show", "123"]).id == "123"
    assert parser.parse_args(["binding", "--customer-bind-id", "order-1"]).customer_bind_id == "order-1"
    with pytest.raises(SystemExit):
        parser.parse_args(["binding"])  # one of the two ids is required
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_deployed_stack_is_found_from_its_outputs_and_the_token_read_only_when_needed():
    import json

    import boto3
    from moto import mock_aws
    from nxcloud_cdr.cli import deployed_target

    with mock_aws():
        arn = boto3.client("secretsmanager", region_name="eu-west-1").create_secret(
            Name="token", SecretString="s3cret\n"
        )["ARN"]
        outputs = {
            "CallRecordsTableName": "records-t",
            "QuarantineTableName": "quarantine-t",
            "CcCdrSyncFunctionName": "sync-fn",
            "PushApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com",
            "PushTokenSecretArn": arn,
        }
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {name: {"Value": value} for name, value in outputs.items()},
        }
        boto3.client("cloudformation", region_name="eu-west-1").create_stack(
            StackName="nxcloud-cdr", TemplateBody=json.dumps(template)
        )

        target = deployed_target("nxcloud-cdr", None, "eu-west-1")

        assert (target.store.table_name, target.store.quarantine_table_name) == ("records-t", "quarantine-t")
        assert (target.sync_function, target.api_url) == ("sync-fn", outputs["PushApiUrl"])
        assert target.push_token() == "s3cret"
