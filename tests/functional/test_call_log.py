"""NXCLOUD's call-centre call-log callback (functions/cc_call_log): the token in its
path and in its `token` header, and one item per call with the sync's copy, whichever
arrives first, on DynamoDB Local and the stand-in NXCLOUD."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devtools.events import EXAMPLE_TOKEN
from devtools.fake_nxcloud import generate_records
from tests.conftest import body_of, event_with_body, load_event
from tests.functional.conftest import FIRST_MS, SPAN_MS
from tests.functional.test_sync import stored_records

FUNCTION = "CcCallLogFunction"


def callback(invoke: Any, row: dict[str, Any], *, token: str | None = EXAMPLE_TOKEN) -> dict[str, Any]:
    event = event_with_body("cc-call-log.json", json.dumps(row))
    if token is None:
        event["headers"].pop("token")
    else:
        event["headers"]["token"] = token
    return invoke(FUNCTION, event)


def test_the_sample_callback_is_stored_as_a_cc_cdr_record(ddb, push_env, invoke, store):
    response = invoke(FUNCTION, load_event("cc-call-log.json"))

    assert (response["statusCode"], body_of(response)["outcome"]) == (200, "stored")
    [item] = store.get(body_of(response)["id"])
    assert (item["kind"], item["source"], item["statusName"]) == ("cc_cdr", "push", "answered")


@pytest.mark.parametrize("token", [None, "", "not-the-token"])
def test_a_callback_without_the_token_in_its_header_is_refused(ddb, push_env, invoke, store, token):
    row = json.loads(load_event("cc-call-log.json")["body"])

    response = callback(invoke, row, token=token)

    assert response["statusCode"] == 403
    assert "'token' header" in body_of(response)["message"]
    assert store.get(row["callId"]) == []
    assert invoke(FUNCTION, load_event("cc-call-log-wrong-token.json"))["statusCode"] == 403


@pytest.mark.parametrize("first", ["callback", "sync"])
def test_callback_and_sync_of_the_same_calls_end_as_one_item_each(ddb, push_env, invoke, store, fake, make_sync, first):
    # The callback is sent as the call ends, before the recording link exists; the CDR
    # page API read minutes later has it. Calls without a recording send the same copy.
    fake.records = generate_records(12, FIRST_MS, SPAN_MS)
    for row in fake.records[:6]:
        row["recordUrl"] = f"https://record.example/{row['callId']}.mp3"
    callbacks = [row | {"recordUrl": ""} if row["recordUrl"] else dict(row) for row in fake.records]
    differ = sum(1 for row in fake.records if row["recordUrl"])

    def send_callbacks() -> list[str]:
        return [body_of(callback(invoke, row))["outcome"] for row in callbacks]

    if first == "callback":
        assert send_callbacks() == ["stored"] * 12
        report = make_sync().run_scheduled()
        assert report.new == 0 and report.updated >= differ
    else:
        assert make_sync().run_scheduled().new == 12
        outcomes = send_callbacks()
        assert outcomes.count("kept") == differ and outcomes.count("duplicate") == 12 - differ

    stored = stored_records(ddb, push_env)
    assert set(stored) == {row["callId"] for row in fake.records}  # one item per call
    for row in fake.records:
        item = stored[row["callId"]]
        assert item["sources"] == ["push", "sync"], row["callId"]
        assert item["fields"]["recordUrl"] == (row["recordUrl"] or ""), row["callId"]
        assert len(store.versions(row["callId"])) == (2 if row["recordUrl"] else 0)
    # Again, in any order: nothing changes.
    assert set(send_callbacks()) == {"duplicate"}
    again = make_sync().backfill(FIRST_MS // 1000 - 60, FIRST_MS // 1000 + SPAN_MS // 1000 + 60)
    assert (again.new, again.updated, again.kept) == (0, 0, 0) and again.unchanged >= 12
