"""Call-centre report push (``seeds/cc-report-push.md``)."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from pydantic import Field

from .. import enums, outcomes
from ..mapping import Normaliser, add_name, call_summary, decimal_amount, require_id, unknown_fields
from ..models import IdStr, LooseInt, LooseStr, NxModel, StrList
from ..phones import normalise_number
from ..records import CallRecord
from ..times import from_local_string


class CcReport(NxModel):
    """Call-centre report push (``seeds/cc-report-push.md``)."""

    callSessionId: IdStr = ""
    callId: LooseStr = ""
    called: LooseStr = ""
    calledInfo: LooseStr = ""
    caller: LooseStr = ""
    ccode: LooseStr = ""
    ccodeName: LooseStr = ""
    agentName: LooseStr = ""
    agentGroupName: LooseStr = ""
    agentAccount: LooseStr = ""
    callDuration: LooseInt = None
    callType: LooseInt = None
    hangupCode: LooseStr = ""
    hangupReason: LooseInt = None
    hangingDirection: LooseInt = None
    labels: StrList = Field(default_factory=list)
    baseCost: LooseStr = ""
    cost: LooseStr = ""
    remark: LooseStr = ""
    callStartTime: LooseStr = ""
    answerTime: LooseStr = ""
    callEndTime: LooseStr = ""
    voiceUrl: LooseStr = ""


# callType: 1 group call to agent (the dialler calls customers out), 2 in, 3 out.
_DIRECTION: dict[int, outcomes.Direction] = {1: "outbound", 2: "inbound", 3: "outbound"}
# hangupReason of a call without an answer time (3, transfer successful, was answered).
_UNANSWERED: dict[int, outcomes.Outcome] = {
    0: "no_answer",
    1: "no_answer",
    2: "no_answer",
    4: "failed",
    5: "failed",
    # Not in the service area: Q.850 20 (SUBSCRIBER_ABSENT) and SIP 480 say no_answer.
    6: "no_answer",
    7: "busy",
    8: "no_answer",
    9: "no_answer",
}
_PARTY: dict[int, outcomes.Party] = {0: "customer", 1: "agent", 3: "system"}


def map_cc_report(payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
    norm = Normaliser()
    model = norm.validate(CcReport, payload)
    session_id = require_id(model.callSessionId, "callSessionId")
    fields = model.model_dump()
    start = norm.add_time(fields, "callStartTime", lambda: from_local_string(model.callStartTime, zone))
    answer = norm.add_time(fields, "answerTime", lambda: from_local_string(model.answerTime, zone))
    end = norm.add_time(fields, "callEndTime", lambda: from_local_string(model.callEndTime, zone))
    add_name(fields, "callType", enums.CC_CALL_TYPE, model.callType)
    add_name(fields, "hangupReason", enums.CC_HANGUP_REASON, model.hangupReason)
    add_name(fields, "hangingDirection", enums.CC_HANGING_DIRECTION, model.hangingDirection)
    for name in ("baseCost", "cost"):
        text = getattr(model, name)
        amount = decimal_amount(text)
        if amount is not None:
            fields[f"{name}Usd"] = amount
        elif text.strip():
            norm.problem((name,), "not an amount DynamoDB can hold as a number")
    direction = _DIRECTION.get(model.callType) if model.callType is not None else None
    duration = norm.number(("callDuration",), model.callDuration)
    if answer is not None or model.hangupReason == 3:
        outcome: outcomes.Outcome = "answered"
    else:
        by_reason = _UNANSWERED.get(model.hangupReason) if model.hangupReason is not None else None
        outcome = outcomes.unanswered(outcomes.from_sip(model.hangupCode), by_reason, ended=end is not None)
    party = _PARTY.get(model.hangingDirection) if model.hangingDirection is not None else None
    summary = call_summary(
        outcome=outcome,
        start=start,
        answer=answer,
        end=end,
        duration_sec=duration,
        recording_url=model.voiceUrl,
        hangup_by=outcomes.hangup_by_party(party, direction),
        hangup_cause=fields.get("hangupReasonName", ""),
        direction=direction,
    )
    return norm.record(
        "cc_report",
        payload,
        raw,
        summary,
        nxcloud_id=session_id,
        start=start,
        caller=normalise_number(model.caller),
        callee=normalise_number(model.called),
        fields=fields,
        unknown_fields=unknown_fields(model),
    )
