"""Failure injection on moto: a store that fails must never be acknowledged."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from nxcloud_cdr import aws_clients
from nxcloud_cdr.config import PushSettings
from nxcloud_cdr.receiver import reset_runtime, runtime

from tests.conftest import as_read, body_of, load_event


def count(client: Any, table: str) -> int:
    return int(client.scan(TableName=table)["Count"])


def fail_with(error: Exception) -> Any:
    def failing(**_: Any) -> Any:
        raise error

    return failing


THROTTLED = ClientError(
    {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "PutItem"
)
UNREACHABLE = EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")


@pytest.mark.parametrize("error", [THROTTLED, UNREACHABLE], ids=["throttled", "unreachable"])
def test_store_failure_is_503_and_nothing_claimed(aws, push_env, invoke, monkeypatch, error):
    event = load_event("pns-call-result.json")
    monkeypatch.setattr(runtime().store._client, "put_item", fail_with(error))

    response = invoke("PnsCallResultFunction", event)

    assert response["statusCode"] == 503
    assert body_of(response) == {
        "ok": False,
        "error": "store_unavailable",
        "message": "the record was not stored; retry later",
    }
    assert count(aws, push_env["TABLE_NAME"]) == 0
    monkeypatch.undo()
    # NXCLOUD's retry, once the store is back, stores it.
    reset_runtime()
    for name, value in push_env.items():
        monkeypatch.setenv(name, value)
    assert body_of(invoke("PnsCallResultFunction", event))["outcome"] == "stored"
    assert count(aws, push_env["TABLE_NAME"]) == 1


def test_quarantine_failure_on_bad_input_is_503_so_the_body_is_not_lost(aws, push_env, invoke, monkeypatch):
    monkeypatch.setattr(runtime().store._client, "update_item", fail_with(THROTTLED))

    response = invoke("PnsCallResultFunction", load_event("pns-call-result-bad-body.json"))

    assert response["statusCode"] == 503
    assert count(aws, push_env["QUARANTINE_TABLE_NAME"]) == 0


def fail_merges(monkeypatch: Any) -> None:
    """Every write of an item that shows a join (the last step of a merge) fails with throttling."""
    client = runtime().writer._client
    real_put = client.put_item

    def put_item(**call: Any) -> Any:
        if "merge" in call["Item"]:
            raise THROTTLED
        return real_put(**call)

    monkeypatch.setattr(client, "put_item", put_item)


def test_a_copy_that_adds_nothing_and_cannot_be_merged_is_503(aws, push_env, invoke, monkeypatch):
    invoke("PnsCallResultFunction", load_event("pns-call-result.json"))
    stale = json.loads(load_event("pns-call-result.json")["body"]) | {"recordFile": ""}
    event = load_event("pns-call-result.json") | {"body": json.dumps(stale)}
    fail_merges(monkeypatch)

    assert invoke("PnsCallResultFunction", event)["statusCode"] == 503
    monkeypatch.undo()
    for name, value in push_env.items():
        monkeypatch.setenv(name, value)
    # NXCLOUD's retry merges the copy; the merge still shows the recording it lacks.
    assert body_of(invoke("PnsCallResultFunction", event))["outcome"] == "kept"
    [shown] = runtime().store.get("1604763745256783872", "pns_call_result")
    assert as_read(shown)["fields"]["recordFile"] and "callSummary" in shown  # the join of the two
    kept = [json.loads(v["raw"]) for v in runtime().store.versions("1604763745256783872")]
    assert stale in kept and len(kept) == 2


def test_a_merge_that_fails_is_503_and_shows_nothing_new(aws, push_env, invoke, monkeypatch):
    payload = json.loads(load_event("pns-call-result.json")["body"])
    poorer = load_event("pns-call-result.json") | {"body": json.dumps(payload | {"recordFile": ""})}
    invoke("PnsCallResultFunction", poorer)
    fail_merges(monkeypatch)

    response = invoke("PnsCallResultFunction", load_event("pns-call-result.json"))

    assert response["statusCode"] == 503
    [shown] = runtime().store.get("1604763745256783872", "pns_call_result")
    assert as_read(shown)["fields"]["recordFile"] == "" and "callSummary" not in shown  # still the one copy
    monkeypatch.undo()
    for name, value in push_env.items():
        monkeypatch.setenv(name, value)
    assert body_of(invoke("PnsCallResultFunction", load_event("pns-call-result.json")))["outcome"] == "updated"
    kept = [json.loads(v["raw"]) for v in runtime().store.versions("1604763745256783872")]
    assert sorted(map(json.dumps, kept)) == sorted(map(json.dumps, [payload, payload | {"recordFile": ""}]))


def test_unexpected_mapping_error_is_422_and_quarantined_never_500(aws, push_env, monkeypatch):
    from nxcloud_cdr.kinds import PNS_CALL_RESULT
    from nxcloud_cdr.payloads import pns_call_result
    from nxcloud_cdr.receiver import Receiver

    def broken(*_: Any) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(pns_call_result, "map_pns_call_result", broken)
    response = Receiver(PNS_CALL_RESULT, runtime()).receive(load_event("pns-call-result.json"))

    assert response["statusCode"] == 422
    assert body_of(response)["error"] == "unprocessable"
    assert "KeyError" not in response["body"]
    assert count(aws, push_env["QUARANTINE_TABLE_NAME"]) == 1


def test_token_read_from_secrets_manager_once_per_container(aws, push_env, invoke, monkeypatch):
    secret = boto3.client("secretsmanager").create_secret(Name="push-token", SecretString="s3cr3t-token-value")
    monkeypatch.delenv("PUSH_TOKEN")
    monkeypatch.setenv("PUSH_TOKEN_SECRET_ID", secret["ARN"])
    reset_runtime()
    calls = []
    real_client = aws_clients.client

    def counting_client(service: str, config: Any = None) -> Any:
        client = real_client(service, config)
        if service == "secretsmanager":
            original = client.get_secret_value

            def get_secret_value(**call: Any) -> Any:
                calls.append(call)
                return original(**call)

            client.get_secret_value = get_secret_value
        return client

    monkeypatch.setattr(aws_clients, "client", counting_client)
    event = load_event("pns-call-result.json")
    event["pathParameters"]["token"] = "s3cr3t-token-value"

    responses = [invoke("PnsCallResultFunction", event) for _ in range(3)]
    wrong = invoke("PnsCallResultFunction", load_event("pns-call-result.json"))

    assert [response["statusCode"] for response in responses] == [200, 200, 200]
    assert wrong["statusCode"] == 403
    # A new secret: the previous version is asked for once too (none yet), then cached.
    assert [call.get("VersionStage") for call in calls] == ["AWSCURRENT", "AWSPREVIOUS"]


def test_rotated_token_is_picked_up_after_max_age(aws, push_env, monkeypatch):
    from nxcloud_cdr.push_auth import PushToken

    values = iter(["old", "new"])
    clock = iter([0.0, 10.0, 400.0, 401.0])
    monkeypatch.setattr("nxcloud_cdr.push_auth.time.monotonic", lambda: next(clock))
    token = PushToken(lambda: next(values), max_age_seconds=300)

    assert token.matches("old")
    assert token.matches("old")
    assert token.matches("new")
    assert not token.matches("old")


def test_empty_expected_token_refuses_everything():
    from nxcloud_cdr.push_auth import PushToken

    assert not PushToken(lambda: "", 300).matches("")


def test_unreadable_secret_is_503_not_403(aws, push_env, invoke, monkeypatch):
    monkeypatch.delenv("PUSH_TOKEN")
    monkeypatch.setenv("PUSH_TOKEN_SECRET_ID", "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing")
    reset_runtime()

    response = invoke("PnsCallResultFunction", load_event("pns-call-result.json"))

    assert response["statusCode"] == 503
    assert body_of(response)["error"] == "not_configured"
    assert count(aws, push_env["TABLE_NAME"]) == 0


def test_logs_carry_ids_but_never_the_token_or_the_numbers(aws, push_env, invoke, capsys, log_output):
    invoke("PnsCallResultFunction", load_event("pns-call-result.json"))
    invoke("PnsCallResultFunction", load_event("pns-call-result-wrong-token.json"))
    invoke("PnsCallResultFunction", load_event("pns-call-result-bad-body.json"))
    output = log_output() + capsys.readouterr().out

    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    # A stored push's one line is its metrics line, which carries the id and outcome.
    stored = next(line for line in lines if "RecordsStored" in line)
    assert stored["nxcloudId"] == "1604763745256783872"
    assert stored["PushType"] == "pns_call_result"
    assert stored["outcome"] == "stored"
    assert any(line.get("message") == "push rejected and quarantined" for line in lines)
    for secret_or_pii in (push_env["PUSH_TOKEN"], "not-the-token", "85235757583", "85238533300"):
        assert secret_or_pii not in output


def test_metrics_per_push_type(aws, push_env, invoke, capsys):
    invoke("CcReportFunction", load_event("cc-report.json"))
    invoke("CcReportFunction", load_event("cc-report.json"))
    invoke("CcReportFunction", load_event("cc-report-bad-body.json"))
    invoke("CcReportFunction", load_event("cc-report-wrong-token.json"))

    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = [
        definition["Name"]
        for blob in metrics
        for directive in blob["_aws"]["CloudWatchMetrics"]
        for definition in directive["Metrics"]
    ]
    assert names == ["RecordsStored", "Duplicates", "Rejected", "Forbidden"]
    assert {blob["PushType"] for blob in metrics} == {"cc_report"}


def test_settings_name_the_wrong_variable():
    with pytest.raises(ValueError, match="PUSH_TOKEN"):
        PushSettings.from_env({"TABLE_NAME": "t", "QUARANTINE_TABLE_NAME": "q"})
    with pytest.raises(ValueError, match="zone"):
        PushSettings.from_env(
            {"TABLE_NAME": "t", "QUARANTINE_TABLE_NAME": "q", "PUSH_TOKEN": "x", "NXCLOUD_TIMEZONE": "Mars"}
        )
    settings = PushSettings.from_env({"TABLE_NAME": "t", "QUARANTINE_TABLE_NAME": "q", "PUSH_TOKEN": "tok-very-secret"})
    assert settings.zone.utcoffset(None) is not None
    assert "tok-very-secret" not in repr(settings)
