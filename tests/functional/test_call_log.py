"""NXCLOUD's call-centre call-log callback (functions/cc_call_log): the token in its
path and in its `token` header, and one item per call with the sync's copy, whichever
arrives first, on DynamoDB Local and the stand-in NXCLOUD."""

from __future__ import annotations

import json
from datetime import UTC, datetime
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


def test_the_callback_and_its_identical_sync_copy_still_cost_one_write_unit_to_store(ddb, push_env, writer, store):
    # The sources it gains must not push the item over 1 KB when compressing its raw
    # keeps it under: the item is rewritten in its cheaper form.
    from nxcloud_cdr.dynamodb_types import deserialise, item_size, write_units
    from nxcloud_cdr.kinds import CC_CDR
    from nxcloud_cdr.times import parse_zone

    raw = load_event("cc-call-log.json")["body"]
    record = CC_CDR.map(json.loads(raw), raw, parse_zone("+08:00"))
    writer.write(record, datetime(2024, 5, 1, tzinfo=UTC), source="push")

    assert writer.write_many([record], datetime(2024, 5, 1, 0, 5, tzinfo=UTC), source="sync").unchanged == 1
    key = {"pk": {"S": f"ID#{record.nxcloud_id}"}, "sk": {"S": "cc_cdr"}}
    item = deserialise(ddb.get_item(TableName=push_env["TABLE_NAME"], Key=key)["Item"])
    assert item["sources"] == ["push", "sync"] and write_units(item_size(item)) == 1
    [shown] = store.get(record.nxcloud_id)
    assert shown["raw"] == raw  # compressed or not, read as received


def test_a_callback_on_the_previous_token_in_its_header_is_counted(ddb, push_env, invoke, monkeypatch, capsys):
    from nxcloud_cdr import receiver

    monkeypatch.setenv("PUSH_TOKEN", "the-new-token-after-a-rotation")
    monkeypatch.setenv("PUSH_TOKEN_PREVIOUS", EXAMPLE_TOKEN)
    receiver.reset_runtime()
    event = load_event("cc-call-log.json")  # its header: the old token
    event["pathParameters"]["token"] = "the-new-token-after-a-rotation"  # the URL: changed

    assert invoke(FUNCTION, event)["statusCode"] == 200
    assert '"PushesOnPreviousToken"' in capsys.readouterr().out


def test_two_copies_nested_deeper_than_the_stack_both_get_200(ddb, push_env, invoke, store):
    def deep(leaf: str) -> str:
        return '{"callId":"deep-1","x":' + '{"a":' * 2000 + json.dumps(leaf) + "}" * 2000 + "}"

    answers = [
        body_of(
            invoke(
                FUNCTION,
                event_with_body("cc-call-log.json", deep(leaf))
                | {"headers": load_event("cc-call-log.json")["headers"]},
            )
        )
        for leaf in ("one", "two")
    ]

    assert [answer["outcome"] for answer in answers] == ["stored", "updated"] or answers[1]["outcome"] == "kept"
    assert len(store.versions("deep-1")) == 2


def test_no_version_expires_before_its_record_when_a_join_moves_its_expiry(ddb, push_env, store):
    from nxcloud_cdr.kinds import CC_CDR
    from nxcloud_cdr.times import parse_zone
    from nxcloud_cdr.write_rule import RecordWriter

    writer = RecordWriter(ddb, push_env["TABLE_NAME"], retention_days=30)
    zone = parse_zone("+08:00")
    early = {"callId": "ttl-1", "startTime": 1690423237704}
    copies = [early | {"agentName": "a"}, early | {"caller": "852"}]
    # A fuller, better-ranked copy with a corrected start a day later moves the item's expiry.
    copies.append({"callId": "ttl-1", "startTime": 1690509637704, "agentName": "a", "caller": "852", "callee": "853"})
    for payload in copies:
        raw = json.dumps(payload)
        writer.write(CC_CDR.map(payload, raw, zone), datetime(2024, 5, 1, tzinfo=UTC), source="push")

    [item] = store.get("ttl-1")
    versions = store.versions("ttl-1")
    assert len(versions) == 3
    # Each version expires the retention after its copy arrived: after the item, which
    # counts from the call's start, and untouched when a join moves that start.
    assert all(int(version["expiresAt"]) >= int(item["expiresAt"]) for version in versions)
    assert {int(version["expiresAt"]) for version in versions} == {int(datetime(2024, 5, 31, tzinfo=UTC).timestamp())}
