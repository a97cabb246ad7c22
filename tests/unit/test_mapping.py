"""Models and mapping on every field of every seed payload, and the edge values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from nxcloud_cdr.mapping import MissingIdError
from nxcloud_cdr.payloads.cc_cdr import map_cc_cdr, queue_duration_ms
from nxcloud_cdr.payloads.cc_report import map_cc_report
from nxcloud_cdr.payloads.pns_binding_not_exist import map_pns_binding_not_exist
from nxcloud_cdr.payloads.pns_call_result import map_pns_call_result
from nxcloud_cdr.records import completeness, content_hash
from nxcloud_cdr.times import parse_zone

from tests.conftest import payload_text

UTC8 = parse_zone("+08:00")


def load(name: str) -> tuple[dict, str]:
    raw = payload_text(name)
    return json.loads(raw), raw


def test_pns_call_result_2024_format_every_field():
    payload, raw = load("pns-call-result-2024.json")
    record = map_pns_call_result(payload, raw, UTC8)

    assert (record.kind, record.nxcloud_id, record.raw) == ("pns_call_result", payload["callId"], raw)
    fields = record.fields
    for name, value in payload.items():
        if name != "legList":
            assert fields[name] == value, name
    assert fields["callStatusName"] == "normal_end"  # "1", a string in this format
    # Each leg kept, every field as sent, its times normalised beside them.
    assert len(fields["legList"]) == 2
    for leg, sent in zip(fields["legList"], payload["legList"], strict=True):
        for name, value in sent.items():
            assert leg[name] == (str(value) if name in ("callType", "hangupType") else value), name
        for name in ("callStartAt", "callRingAt", "callAnswerAt", "callFinishAt"):
            assert leg[f"{name}Ms"] == sent[name] * 1000
        assert leg["hangupCodeName"] == "NORMAL_CLEARING"
    # The call from its legs: the first leg's start, the callee leg's ring, answer, talk
    # time and recording, the last end.
    assert fields["callSummary"] == {
        "outcome": "answered",
        "startUtc": "2024-05-01T00:00:00.000Z",
        "ringUtc": "2024-05-01T00:00:03.000Z",
        "answerUtc": "2024-05-01T00:00:10.000Z",
        "endUtc": "2024-05-01T00:01:05.000Z",
        "durationSec": 55,
        "recordingUrl": payload["legList"][1]["callRecordFile"],
        "hangupBy": "caller",
        "hangupCause": "NORMAL_CLEARING",
    }
    assert record.start == datetime(2024, 5, 1, tzinfo=UTC)
    assert (record.caller, record.callee) == ("85261234567", "85298765432")
    assert (record.did, record.did_y) == ("85230001111", "85230002222")
    assert (record.bind_id, record.customer_bind_id) == (payload["bindId"], "order-20240501-7781")
    assert (record.duration_sec, record.outcome) == (55, "answered")
    assert record.unknown_fields == () and record.problems == ()
    assert record.latest_ms == 1714521665000


def test_pns_call_result_2024_format_unanswered_and_its_variants():
    payload, raw = load("pns-call-result-2024-unanswered.json")
    summary = map_pns_call_result(payload, raw, UTC8).fields["callSummary"]
    assert (summary["outcome"], summary["hangupBy"], summary["hangupCause"]) == ("no_answer", "callee", "NO_ANSWER")
    assert "answerUtc" not in summary and "recordingUrl" not in summary and summary["durationSec"] == 0

    # didX only (no did), a leading +, no legs at all: still a call result, found by X.
    bare = {"callId": "2024-bare", "didX": "+85230001111", "callee": "+85298765432", "callStatus": "2", "legList": []}
    record = map_pns_call_result(bare, json.dumps(bare), UTC8)
    assert (record.did, record.callee, record.outcome, record.start) == ("85230001111", "85298765432", "failed", None)
    # A leg list that is not a list: the field is left out (raw keeps it), the call kept.
    odd = {"callId": "2024-odd", "pnsType": "axb", "legList": "none"}
    record = map_pns_call_result(odd, json.dumps(odd), UTC8)
    assert record.fields["legList"] == [] and record.problems and record.outcome == "unknown"


def test_pns_call_result_seed_every_field():
    payload, raw = load("pns-call-result.json")
    record = map_pns_call_result(payload, raw, UTC8)

    assert (record.kind, record.nxcloud_id, record.raw) == ("pns_call_result", "1604763745256783872", raw)
    fields = record.fields
    # Every field of the seed, with its value as sent.
    for name, value in payload.items():
        assert fields[name] == value, name
    assert fields["startAtUtc"] == "2022-12-19T09:00:52.000Z"
    assert fields["startAtMs"] == 1671440452000
    assert fields["answerAtUtc"] == "2022-12-19T09:00:54.000Z"
    assert fields["hangupAtUtc"] == "2022-12-19T09:01:00.000Z"
    assert fields["hangupAtMs"] == 1671440460000
    assert fields["callStatusName"] == "normal_end"
    assert fields["hangupName"] == "caller"
    assert "hangupCodeName" not in fields  # 0 with an empty hangupCause: not set
    assert record.start == datetime(2022, 12, 19, 9, 0, 52, tzinfo=UTC)
    assert (record.caller, record.callee, record.did) == ("85235757583", "85238533300", "85235757584")
    assert (record.bind_id, record.customer_bind_id) == ("69f1d1be1a82204c6049b4a2797ed0af", "1")
    assert (record.duration_sec, record.outcome) == (6, "answered")
    assert fields["callSummary"] == {
        "outcome": "answered",
        "startUtc": "2022-12-19T09:00:52.000Z",
        "answerUtc": "2022-12-19T09:00:54.000Z",
        "endUtc": "2022-12-19T09:01:00.000Z",
        "durationSec": 6,
        "recordingUrl": payload["recordFile"],
        "hangupBy": "caller",
    }
    assert record.unknown_fields == ()


def test_pns_call_result_loose_types_zero_times_and_extra_fields():
    payload, raw = load("pns-call-result-unanswered.json")
    record = map_pns_call_result(payload, raw, UTC8)
    fields = record.fields

    assert fields["id"] == 46  # "46" coerced
    assert fields["callStatus"] == 2 and fields["callStatusName"] == "abnormal_end"
    assert fields["duration"] == 0 and record.duration_sec == 0
    assert fields["callStatusMsg"] == "" and fields["recordFile"] == ""  # null read as not set
    assert fields["answerAt"] == 0 and "answerAtUtc" not in fields and "answerAtMs" not in fields
    assert fields["hangupCodeName"] == "NO_ANSWER" and fields["hangupName"] == "callee"
    assert fields["extensionCallee"] == "8001"
    assert record.unknown_fields == ("lineIp",)
    assert fields["lineIp"] == "10.0.0.8"
    assert record.did == "85235757584" and fields["did"] == "+85235757584"
    assert record.callee == "NX09445G000025"
    assert record.customer_bind_id is None


def test_pns_call_result_numeric_call_id_becomes_text():
    record = map_pns_call_result({"callId": 1604763745256783872, "startAt": "1671440452"}, "{}", UTC8)

    assert record.nxcloud_id == "1604763745256783872"
    assert record.fields["startAtUtc"] == "2022-12-19T09:00:52.000Z"


def test_pns_call_result_unknown_enum_values_are_named_not_rejected():
    record = map_pns_call_result({"callId": "9", "callStatus": 7, "hangup": 5, "hangupCode": 999}, "{}", UTC8)

    assert record.fields["callStatusName"] == "unknown_7"
    assert record.fields["hangupName"] == "unknown_5"
    assert record.fields["hangupCodeName"] == "unknown_999"


def test_pns_binding_not_exist_seed_every_field():
    payload, raw = load("pns-binding-not-exist.json")
    record = map_pns_binding_not_exist(payload, raw, UTC8)
    fields = record.fields

    assert (record.kind, record.nxcloud_id) == ("pns_binding_not_exist", "1640920940635361280")
    assert fields["code"] == 10013 and fields["codeName"] == "binding_not_exist"
    assert fields["msg"] == "binding not exist" and fields["requestId"] == "1640920940635361280"
    assert fields["data"]["action"] == "queryAXB"
    assert fields["data"]["requestParams"] == {"caller": "852121199", "did": "85299999999"}
    assert fields["data"]["occurrenceTime"] == "2023-03-29 11:36:53"
    # UTC+8 by default (PNS snowflake ids decode to UTC+8).
    assert fields["data"]["occurrenceTimeUtc"] == "2023-03-29T03:36:53.000Z"
    assert fields["data"]["occurrenceTimeMs"] == 1680061013000
    assert (record.caller, record.did, record.callee) == ("852121199", "85299999999", None)
    assert record.outcome == "no_binding"
    assert fields["callSummary"] == {
        "outcome": "no_binding",
        "startUtc": "2023-03-29T03:36:53.000Z",
        "hangupBy": "system",
    }
    assert record.start == datetime(2023, 3, 29, 3, 36, 53, tzinfo=UTC)


def test_binding_time_zone_is_configuration():
    payload, raw = load("pns-binding-not-exist.json")

    record = map_pns_binding_not_exist(payload, raw, parse_zone("UTC"))

    assert record.fields["data"]["occurrenceTimeUtc"] == "2023-03-29T11:36:53.000Z"


def test_binding_other_error_code_and_extra_nested_fields_kept():
    payload = {
        "code": "10005",
        "msg": "other",
        "requestId": "77",
        "data": {"requestParams": {"caller": "1", "did": "2", "callee": "3"}, "occurrenceTime": "", "x": 1},
        "traceId": "t",
    }
    record = map_pns_binding_not_exist(payload, json.dumps(payload), UTC8)

    assert record.fields["code"] == 10005 and record.fields["codeName"] == "unknown_10005"
    assert record.fields["data"]["requestParams"]["callee"] == "3"
    assert record.fields["data"]["x"] == 1
    assert record.unknown_fields == ("traceId",)
    assert record.start is None and "occurrenceTimeUtc" not in record.fields["data"]


def test_cc_report_every_field():
    payload, raw = load("cc-report.json")
    record = map_cc_report(payload, raw, UTC8)
    fields = record.fields

    assert (record.kind, record.nxcloud_id) == ("cc_report", "c7a1f0e2b3d44e5f8a9b0c1d2e3f4a5b")
    for name, value in payload.items():
        assert fields[name] == value, name
    assert fields["callStartTimeUtc"] == "2023-11-17T05:42:30.000Z"
    assert fields["answerTimeUtc"] == "2023-11-17T05:42:33.000Z"
    assert fields["callEndTimeUtc"] == "2023-11-17T05:42:48.000Z"
    assert fields["callEndTimeMs"] == 1700199768000
    assert fields["callTypeName"] == "outgoing"
    assert fields["hangupReasonName"] == "outgoing_hung_up"
    assert fields["hangingDirectionName"] == "customer"
    assert fields["baseCostUsd"] == Decimal("0.0300") and fields["costUsd"] == Decimal("0.0350")
    assert (record.caller, record.callee, record.did) == ("85238531117", "85235757568", None)
    assert (record.duration_sec, record.outcome) == (15, "answered")
    summary = fields["callSummary"]
    assert (summary["direction"], summary["hangupBy"], summary["hangupCause"]) == (
        "outbound",
        "callee",  # the customer, called by the agent
        "outgoing_hung_up",
    )
    assert (summary["answerUtc"], summary["durationSec"]) == ("2023-11-17T05:42:33.000Z", 15)


def test_cc_report_unanswered_nulls_and_extra_fields():
    payload, raw = load("cc-report-unanswered.json")
    record = map_cc_report(payload, raw, UTC8)
    fields = record.fields

    assert fields["answerTime"] == "" and "answerTimeUtc" not in fields
    assert fields["labels"] == [] and fields["calledInfo"] == "" and fields["agentName"] == ""
    assert fields["callTypeName"] == "incoming" and fields["hangupReasonName"] == "incoming_not_answered"
    assert fields["hangingDirectionName"] == "system"
    assert fields["costUsd"] == Decimal("0")
    assert record.unknown_fields == ("queueName",)


def test_cc_report_labels_as_comma_text_and_bad_cost_kept_as_text():
    record = map_cc_report({"callSessionId": "s", "labels": "a, b", "cost": "n/a"}, "{}", UTC8)

    assert record.fields["labels"] == ["a", "b"]
    assert record.fields["cost"] == "n/a" and "costUsd" not in record.fields


@pytest.mark.parametrize(
    ("mapper", "payload", "name"),
    [
        (map_pns_call_result, {"caller": "1"}, "callId"),
        (map_pns_call_result, {"callId": None}, "callId"),
        (map_pns_binding_not_exist, {"code": 10013, "data": {}}, "requestId"),
        (map_cc_report, {"callId": "only-the-call-id"}, "callSessionId"),
    ],
)
def test_missing_id_is_its_own_error(mapper, payload, name):
    with pytest.raises(MissingIdError, match=name):
        mapper(payload, "{}", UTC8)


@pytest.mark.parametrize(
    ("mapper", "payload"),
    [
        (map_pns_call_result, {"callId": "1", "duration": "six"}),
        (map_pns_call_result, {"callId": "1", "startAt": [1]}),
        (map_pns_binding_not_exist, {"requestId": "1", "data": "not an object"}),
        (map_cc_report, {"callSessionId": "1", "callType": {"a": 1}}),
    ],
)
def test_unreadable_field_costs_only_that_field(mapper, payload):
    raw = json.dumps(payload)
    record = mapper(payload, raw, UTC8)

    (name,) = set(payload) - {"callId", "requestId", "callSessionId"}
    assert record.raw == raw and record.content_hash == content_hash(payload)
    assert [problem.split(":")[0] for problem in record.problems] == [name]
    # Its normalised form is the model's "not set"; raw keeps the value as sent.
    assert record.fields[name] in (
        "",
        None,
        {"action": "", "requestParams": {"caller": "", "did": ""}, "occurrenceTime": ""},
    )


def test_unreadable_field_keeps_the_rest_of_the_record():
    payload = {"callId": "1", "duration": "six", "caller": "+852 1234", "startAt": 1671440452}
    record = map_pns_call_result(payload, json.dumps(payload), UTC8)

    assert record.duration_sec is None and record.caller == "8521234"
    assert record.fields["startAtUtc"] == "2022-12-19T09:00:52.000Z"
    assert record.problems == ("duration: Input should be a valid integer, unable to parse string as an integer",)


def test_unparseable_local_time_is_left_out_and_noted():
    record = map_cc_report({"callSessionId": "1", "callStartTime": "17/11/2023 13:42"}, "{}", UTC8)

    assert record.start is None and "callStartTimeUtc" not in record.fields
    assert record.fields["callStartTime"] == "17/11/2023 13:42"
    assert record.problems[0].startswith("callStartTime: not a time (time data")


@pytest.mark.parametrize(
    "payload",
    [
        {"callId": "x", "ringTime": 2**63 - 1, "startTime": 1690442492841},  # year 292278994
        {"callId": "x", "ringTime": 10**400, "startTime": 1690442492841},  # beyond a float
        {"callId": "x", "ringTime": -(2**70), "startTime": 1690442492841},
    ],
)
def test_out_of_range_time_costs_only_that_time(payload):
    record = map_cc_cdr(payload, json.dumps(payload), UTC8)

    assert "ringTimeUtc" not in record.fields and record.fields["startTimeMs"] == 1690442492841
    assert record.start == datetime(2023, 7, 27, 7, 21, 32, 841000, tzinfo=UTC)
    assert all(problem.startswith("ringTime") for problem in record.problems)


@pytest.mark.parametrize(
    ("mapper", "payload", "attribute"),
    [
        (map_pns_call_result, {"callId": "1", "duration": "1e300"}, "duration_sec"),
        (map_cc_report, {"callSessionId": "1", "callDuration": 10**40}, "duration_sec"),
        (map_cc_cdr, {"callId": "1", "callDuration": str(10**39)}, "duration_sec"),
    ],
)
def test_number_dynamodb_cannot_hold_is_left_out_of_the_lookups(mapper, payload, attribute):
    record = mapper(payload, json.dumps(payload), UTC8)

    assert getattr(record, attribute) is None
    assert record.problems and "out of range" in record.problems[0]


def test_amount_out_of_range_is_not_a_number_field():
    record = map_cc_report({"callSessionId": "1", "cost": "1e999", "baseCost": "0.03"}, "{}", UTC8)

    assert "costUsd" not in record.fields and record.fields["baseCostUsd"] == Decimal("0.03")
    assert record.problems == ("cost: not an amount DynamoDB can hold as a number",)


def test_rank_orders_copies_by_completeness_then_latest_time_then_hash():
    def copy_of(**fields: object) -> Any:
        payload = {"callId": "1", "startAt": 1671440452, **fields}
        return map_pns_call_result(payload, json.dumps(payload), UTC8)

    fuller, later, earlier = (
        copy_of(duration=6, recordFile="x"),
        copy_of(hangupAt=1671440470),
        copy_of(hangupAt=1671440460),
    )
    assert fuller.rank > later.rank > earlier.rank
    assert later.latest_ms == 1671440470000
    twin_a, twin_b = copy_of(duration=10), copy_of(duration=12)
    assert twin_a.rank != twin_b.rank
    assert (twin_a.rank < twin_b.rank) == (twin_a.content_hash < twin_b.content_hash)


def test_content_hash_ignores_key_order_but_not_values():
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_completeness_counts_informative_leaves():
    assert completeness({"a": "", "b": None, "c": 0, "d": [], "e": {}, "f": False}) == 0
    assert completeness({"a": "x", "b": 1, "c": {"d": "y", "e": ["z", ""]}, "g": True}) == 5


def seed_cdr_records() -> list[dict]:
    return json.loads(payload_text("cc-cdr-page-response.json"))["data"]


def test_cc_cdr_seed_records_every_field():
    missed, answered = seed_cdr_records()
    record = map_cc_cdr(missed, json.dumps(missed), UTC8)
    fields = record.fields

    assert (record.kind, record.nxcloud_id) == ("cc_cdr", "63b09b9a163616c6c009cb326")
    for name, value in missed.items():
        assert fields[name] == ("" if value is None else value), name
    # Record times are milliseconds; zero means not set.
    assert fields["startTimeUtc"] == "2023-07-27T07:21:32.841Z" and fields["startTimeMs"] == 1690442492841
    assert fields["endTimeUtc"] == "2023-07-27T07:21:38.901Z"
    assert fields["inQueueTimeMs"] == 1690442492861 and fields["outQueueTimeMs"] == 1690442498000
    assert fields["ringTimeUtc"] == "2023-07-27T07:21:32.000Z"
    assert "answerTimeUtc" not in fields
    # The record's direction: 0 is inbound (the request filter would say 1).
    assert fields["directionName"] == "inbound"
    assert fields["hangupByName"] == "agent"
    assert fields["queueDurationMs"] == 5139  # sent in milliseconds here
    assert record.outcome == "no_answer"
    summary = fields["callSummary"]
    assert (summary["outcome"], summary["direction"], summary["hangupBy"]) == ("no_answer", "inbound", "callee")
    assert summary["hangupCause"] == "User abandoned the queue" and "answerUtc" not in summary
    assert (record.caller, record.callee, record.duration_sec) == ("85215236100", "85235757580", 0)
    assert record.start == datetime(2023, 7, 27, 7, 21, 32, 841000, tzinfo=UTC)

    other = map_cc_cdr(answered, json.dumps(answered), UTC8).fields
    assert other["answered"] is True and other["answerTimeUtc"] == "2023-07-27T02:00:44.000Z"
    assert other["queueDurationMs"] == 6000  # sent in seconds here
    assert other["hangupByName"] == "user" and other["totalCustomerPrice"] == 0.035


def test_cc_cdr_extra_fields_and_loose_values():
    payload = {
        "callId": "x",
        "direction": "2",
        "answered": "true",
        "startTime": "1690442492841",
        "lineIp": "10.0.0.1",
        "mos": 4.2,
        "hangupCause": "NORMAL_CLEARING",
        "termSipCode": 200,
        "totalCustomerPrice": "0.035",
    }
    record = map_cc_cdr(payload, json.dumps(payload), UTC8)

    assert record.fields["directionName"] == "aicc" and record.fields["answered"] is True
    assert record.fields["totalCustomerPrice"] == 0.035
    assert record.unknown_fields == ("hangupCause", "lineIp", "mos", "termSipCode")
    assert record.fields["mos"] == 4.2


@pytest.mark.parametrize(
    ("value", "in_ms", "out_ms", "expected"),
    [(5139, 1000, 6139, 5139), (6, 1000, 7256, 6000), (6, None, None, 6000), (None, 1, 2, None)],
)
def test_queue_duration_unit_is_read_from_the_queue_times(value, in_ms, out_ms, expected):
    assert queue_duration_ms(value, in_ms, out_ms) == expected


def test_pns_2024_a_call_that_never_reached_the_callee_is_not_answered():
    # One leg, the caller's to X, answered by the platform: the callee never answered.
    payload, _ = load("pns-call-result-2024-unanswered.json")
    payload["legList"] = payload["legList"][:1]
    payload["callStatus"] = "²"  # not an ASCII digit: no status, not a crash
    record = map_pns_call_result(payload, json.dumps(payload), UTC8)
    summary = record.fields["callSummary"]
    assert record.outcome == "unknown" and "answerUtc" not in summary and "durationSec" not in summary
    assert "callStatusName" not in record.fields
