"""One vocabulary of outcomes, hang-up sides and directions across every kind: each
mapper's codes turned into the same words, whatever values a body holds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nxcloud_cdr import outcomes
from nxcloud_cdr.kinds import RECORD_KINDS
from nxcloud_cdr.mapping import SUMMARY, MissingIdError
from nxcloud_cdr.times import parse_zone
from pydantic import ValidationError

from tests.conftest import payload_text

UTC8 = parse_zone("+08:00")
SAMPLES = {
    "pns_call_result": "pns-call-result.json",
    "pns_binding_not_exist": "pns-binding-not-exist.json",
    "cc_report": "cc-report.json",
}


def sample(kind: str) -> dict[str, Any]:
    if kind == "cc_cdr":
        return dict(json.loads(payload_text("cc-cdr-page-response.json"))["data"][0])
    return dict(json.loads(payload_text(SAMPLES[kind])))


def summary(kind: str, **changes: Any) -> dict[str, Any]:
    payload = sample(kind) | changes
    record = RECORD_KINDS[kind].map(payload, json.dumps(payload), UTC8)
    assert record.outcome == record.fields[SUMMARY]["outcome"]
    return dict(record.fields[SUMMARY])


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({}, "answered"),
        ({"answerAt": 0, "duration": 0, "hangupCode": 17}, "busy"),
        ({"answerAt": 0, "duration": 0, "hangupCode": 0, "hangupCause": "NO_ANSWER"}, "no_answer"),
        ({"answerAt": 0, "duration": 0, "hangupCode": 21}, "rejected"),
        ({"answerAt": 0, "duration": 0, "hangupCode": 1}, "failed"),
        ({"answerAt": 0, "duration": 0, "callStatus": 2}, "failed"),
        ({"answerAt": 0, "duration": 0, "callStatus": 1}, "no_answer"),
        ({"answerAt": 0, "duration": 0, "callStatus": 0}, "unknown"),
    ],
)
def test_pns_call_result_outcomes(changes, outcome):
    assert summary("pns_call_result", **changes)["outcome"] == outcome


@pytest.mark.parametrize(
    ("changes", "outcome", "hangup_by"),
    [
        ({}, "answered", "callee"),
        ({"answerTime": "", "hangupReason": 7, "hangupCode": ""}, "busy", "callee"),
        ({"answerTime": "", "hangupReason": 0, "hangupCode": "603"}, "rejected", "callee"),
        ({"answerTime": "", "hangupReason": 8, "callType": 2, "hangingDirection": 0}, "no_answer", "caller"),
        ({"answerTime": "", "hangupReason": 4, "hangingDirection": 3}, "failed", "system"),
    ],
)
def test_cc_report_outcomes_and_sides(changes, outcome, hangup_by):
    found = summary("cc_report", **changes)
    assert (found["outcome"], found["hangupBy"]) == (outcome, hangup_by)


@pytest.mark.parametrize(
    ("changes", "outcome", "hangup_by"),
    [
        ({"answered": True, "answerTime": 1690423244000, "hangupBy": 1, "direction": 0}, "answered", "caller"),
        ({"answered": False, "callStatus": "Busy"}, "busy", "callee"),
        ({"answered": False, "callStatus": "Missed call", "direction": 1, "hangupBy": 0}, "no_answer", "caller"),
        ({"answered": None, "endTime": 0, "callStatus": "", "hangupReason": ""}, "unknown", "callee"),
    ],
)
def test_cc_cdr_outcomes_and_sides(changes, outcome, hangup_by):
    found = summary("cc_cdr", **changes)
    assert (found["outcome"], found["hangupBy"]) == (outcome, hangup_by)


def test_binding_not_exist_is_a_call_refused_for_no_binding():
    assert summary("pns_binding_not_exist") == {
        "outcome": "no_binding",
        "startUtc": "2023-03-29T03:36:53.000Z",
        "hangupBy": "system",
    }


def test_an_agent_or_customer_becomes_caller_or_callee_by_direction():
    assert outcomes.hangup_by_party("customer", "inbound") == "caller"
    assert outcomes.hangup_by_party("agent", "inbound") == "callee"
    assert outcomes.hangup_by_party("agent", "outbound") == "caller"
    assert outcomes.hangup_by_party("customer", "outbound") == "callee"
    assert outcomes.hangup_by_party("system", None) == "system"
    assert outcomes.hangup_by_party("agent", None) == "unknown"


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.sampled_from(["", "0", "1", "2", "17", "486", "603", "busy", "USER_BUSY", "2023-11-17 13:42:33"]),
    st.text(max_size=12),
)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from([*sorted(RECORD_KINDS), "pns_call_result_2024"]), data=st.data())
def test_every_kind_speaks_the_one_vocabulary_whatever_its_values(kind, data):
    if kind == "pns_call_result_2024":
        kind, payload = "pns_call_result", dict(json.loads(payload_text("pns-call-result-2024.json")))
        legs = payload["legList"]
        for leg in legs:
            for name in data.draw(st.lists(st.sampled_from(sorted(leg)), unique=True, max_size=len(leg))):
                leg[name] = data.draw(values)
    else:
        payload = sample(kind)
    names = sorted(payload)
    for name in data.draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names))):
        payload[name] = data.draw(values)
    try:
        record = RECORD_KINDS[kind].map(payload, json.dumps(payload), UTC8)
    except (MissingIdError, ValidationError):
        return  # refused: the receiver quarantines the body
    found = record.fields[SUMMARY]
    assert record.outcome == found["outcome"] in outcomes.OUTCOMES
    assert found["hangupBy"] in outcomes.HANGUP_BY
    assert found.get("direction") in (None, *outcomes.DIRECTIONS)
