"""Each function's IAM policy in template.yaml allows every DynamoDB call its code makes,
read from the calls themselves: every path of the write rule (new, duplicate, a new
source, a merge, a refused body) and the sync, on DynamoDB Local, each call checked
against the statements of the function's policy for that table."""

from __future__ import annotations

import json

import pytest

from devtools.template import load_template
from tests.conftest import FUNCTIONS, SYNC_FUNCTION, event_with_body, load_event

RESOURCES = load_template()["Resources"]
SAMPLES = {
    "PnsCallResultFunction": "pns-call-result.json",
    "PnsBindingNotExistFunction": "pns-binding-not-exist.json",
    "CcReportFunction": "cc-report.json",
    "CcCallLogFunction": "cc-call-log.json",
}


def allowed(function: str, operation: str, table: str, index: str = "") -> bool:
    """Whether a statement of the function's policy allows the operation on the table
    (or on the index: the table's ARN followed by /index/<name>)."""
    wanted = {"Fn::Sub": f"${{{table}.Arn}}/index/{index}"} if index else {"Fn::GetAtt": [table, "Arn"]}
    for policy in RESOURCES[function]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            if wanted in resources and f"dynamodb:{operation}" in statement["Action"]:
                return True
    return False


def check(function: str, made: list[tuple[str, str, str]], push_env: dict[str, str]) -> set[str]:
    logical = {push_env["TABLE_NAME"]: "CallRecordsTable", push_env["QUARANTINE_TABLE_NAME"]: "QuarantineTable"}
    refused = {
        f"{operation} on {logical[table]} {index}".strip()
        for operation, table, index in made
        if not allowed(function, operation, logical[table], index)
    }
    assert refused == set(), function
    return {operation for operation, _, _ in made}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_call_of_a_push_function_is_allowed_by_its_policy(ddb, push_env, invoke, calls, function):
    event = load_event(SAMPLES[function])
    payload = json.loads(event["body"])
    changed = dict(payload, extraFieldForTheMerge="a value the first copy did not have")
    for body in (event["body"], event["body"], json.dumps(changed), "not json"):
        response = invoke(function, event_with_body(SAMPLES[function], body) | {"headers": event["headers"]})
        assert response["statusCode"] in (200, 400)

    made = check(function, calls, push_env)
    assert {"PutItem", "UpdateItem"} <= made  # new, joined, quarantined: the paths ran


def test_every_call_of_the_sync_is_allowed_by_its_policy(ddb, push_env, invoke, live_nxcloud, calls):
    # Calls the callback reported first, identical (a new source) or without their
    # recording (a merge), then the sync.
    for row in live_nxcloud.records[:10]:
        body = json.dumps(row | {"recordUrl": ""} if row.get("recordUrl") else row)
        event = load_event("cc-call-log.json")
        assert (
            invoke("CcCallLogFunction", event_with_body("cc-call-log.json", body) | {"headers": event["headers"]})[
                "statusCode"
            ]
            == 200
        )
    calls.clear()

    assert invoke(SYNC_FUNCTION, load_event("cc-cdr-sync-scheduled.json"))["status"] == "complete"

    made = check(SYNC_FUNCTION, calls, push_env)
    assert {"BatchGetItem", "PutItem", "UpdateItem"} <= made
