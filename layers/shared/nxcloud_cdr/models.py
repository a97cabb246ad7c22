"""Pydantic v2 models of NXCLOUD's payloads, as lenient as NXCLOUD is loose.

Every model accepts and keeps unknown fields (``extra="allow"``: they land in
``model_extra``), turns numbers sent as strings into numbers and numbers sent as
strings into strings, and reads ``null`` and ``""`` as "not set". A field whose value
cannot be read at all (``"duration": "abc"``) is a validation error: the receiver
answers 422 and keeps the body in quarantine.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

# Whole numbers beyond this many digits are not NXCLOUD's integers; building one as an
# int from an exactly read number (1e999999) would take seconds.
_INT_DIGITS = 40


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, Decimal) and (not value.is_finite() or value.adjusted() >= _INT_DIGITS):
        raise ValueError("number out of range")
    if isinstance(value, str):
        value = value.strip()
        if value == "":
            return None
        # "6.0" is a whole number that pydantic's lax int parsing refuses.
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else value
    return value


def _none_to_empty(value: Any) -> Any:
    return "" if value is None else value


def _to_string_list(value: Any) -> Any:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


LooseInt = Annotated[int | None, BeforeValidator(_blank_to_none)]
LooseStr = Annotated[str, BeforeValidator(_none_to_empty)]
StrList = Annotated[list[str], BeforeValidator(_to_string_list)]


class NxModel(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, populate_by_name=True)


class PnsCallResult(NxModel):
    """PNS call result push, flat format (``seeds/pns-call-result-push.md``)."""

    callId: LooseStr = ""
    id: LooseInt = None
    businessId: LooseStr = ""
    customerBindId: LooseStr = ""
    bindId: LooseStr = ""
    did: LooseStr = ""
    caller: LooseStr = ""
    callee: LooseStr = ""
    callStatus: LooseInt = None
    callStatusMsg: LooseStr = ""
    duration: LooseInt = None
    startAt: LooseInt = None
    answerAt: LooseInt = None
    hangupAt: LooseInt = None
    hangupCause: LooseStr = ""
    hangupCode: LooseInt = None
    hangup: LooseInt = None
    recordFile: LooseStr = ""
    # Jan-2024 revision of the flat format.
    extensionCaller: LooseStr = ""
    extensionCallee: LooseStr = ""


class BindingRequestParams(NxModel):
    caller: LooseStr = ""
    did: LooseStr = ""


class BindingEventData(NxModel):
    action: LooseStr = ""
    requestParams: BindingRequestParams = BindingRequestParams()
    occurrenceTime: LooseStr = ""


class PnsBindingNotExist(NxModel):
    """PNS binding-not-exist push (``seeds/pns-binding-not-exist-push.md``)."""

    requestId: LooseStr = ""
    code: LooseInt = None
    msg: LooseStr = ""
    data: BindingEventData = BindingEventData()


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
    labels: StrList = []
    baseCost: LooseStr = ""
    cost: LooseStr = ""
    remark: LooseStr = ""
    callStartTime: LooseStr = ""
    answerTime: LooseStr = ""
    callEndTime: LooseStr = ""
    voiceUrl: LooseStr = ""


LooseFloat = Annotated[float | None, BeforeValidator(_blank_to_none)]


class CcCdrRecord(NxModel):
    """One record of the call-centre CDR page API (``seeds/cc-cdr-page-api.md``); the
    NXCC call-log callback sends the same shape. Every field may be missing."""

    callId: LooseStr = ""
    agentName: LooseStr = ""
    agentNickName: LooseStr = ""
    answered: bool | None = None
    answerTime: LooseInt = None
    callDuration: LooseInt = None
    callee: LooseStr = ""
    caller: LooseStr = ""
    direction: LooseInt = None
    dtmfKeys: LooseStr = ""
    endTime: LooseInt = None
    hangupBy: LooseInt = None
    hangupCode: LooseInt = None
    callStatus: LooseStr = ""
    hangupReason: LooseStr = ""
    inQueueTime: LooseInt = None
    leaveMsgUrl: LooseStr = ""
    orderId: LooseStr = ""
    other: LooseStr = ""
    intent: LooseStr = ""
    outQueueTime: LooseInt = None
    queueDuration: LooseInt = None
    recordUrl: LooseStr = ""
    ringDuration: LooseInt = None
    ringTime: LooseInt = None
    startTime: LooseInt = None
    taskId: LooseStr = ""
    totalCustomerPrice: LooseFloat = None
