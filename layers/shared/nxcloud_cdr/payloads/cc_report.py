"""Call-centre report push (``seeds/cc-report-push.md``)."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from pydantic import Field

from .. import enums
from ..mapping import Normaliser, add_name, decimal_amount, require_id, unknown_fields
from ..models import LooseInt, LooseStr, NxModel, StrList
from ..phones import normalise_number
from ..records import CallRecord
from ..times import from_local_string


class CcReport(NxModel):
    """Call-centre report push (``seeds/cc-report-push.md``)."""

    callSessionId: LooseStr = ""
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


def map_cc_report(payload: dict[str, Any], raw: str, zone: tzinfo) -> CallRecord:
    norm = Normaliser()
    model = norm.validate(CcReport, payload)
    session_id = require_id(model.callSessionId, "callSessionId")
    fields = model.model_dump()
    start = norm.add_time(fields, "callStartTime", lambda: from_local_string(model.callStartTime, zone))
    norm.add_time(fields, "answerTime", lambda: from_local_string(model.answerTime, zone))
    norm.add_time(fields, "callEndTime", lambda: from_local_string(model.callEndTime, zone))
    add_name(fields, "callType", enums.CC_CALL_TYPE, model.callType)
    add_name(fields, "hangupReason", enums.CC_HANGUP_REASON, model.hangupReason)
    add_name(fields, "hangingDirection", enums.CC_HANGING_DIRECTION, model.hangingDirection)
    for name in ("baseCost", "cost"):
        text = getattr(model, name)
        amount = decimal_amount(text)
        if amount is not None:
            fields[f"{name}Usd"] = amount
        elif text.strip():
            norm.problems.append(f"{name}: not an amount DynamoDB can hold as a number")
    return norm.record(
        "cc_report",
        payload,
        raw,
        nxcloud_id=session_id,
        start=start,
        caller=normalise_number(model.caller),
        callee=normalise_number(model.called),
        duration_sec=norm.number("callDuration", model.callDuration),
        status_name=fields.get("hangupReasonName"),
        fields=fields,
        unknown_fields=unknown_fields(model),
    )
