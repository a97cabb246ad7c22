"""One vocabulary for every kind: how a call ended, who hung up, which way it went.

NXCLOUD says these things differently in each product (``callStatus`` 1 and Q.850
codes in PNS, ``hangupReason`` 0-9 and SIP codes in the call-centre report, free text in
the CDR page API). Each mapper turns its own codes into these words with the pure
functions here, into the record's ``callSummary`` (docs/data-model.md); the original
codes stay beside them in ``fields`` and in ``raw``.
"""

from __future__ import annotations

from typing import Literal

Outcome = Literal["answered", "no_answer", "busy", "rejected", "failed", "no_binding", "unknown"]
HangupBy = Literal["caller", "callee", "system", "unknown"]
Direction = Literal["inbound", "outbound"]
# Who hung up, as the call centre says it: its agent, the customer, or the system.
Party = Literal["agent", "customer", "system"]

OUTCOMES: tuple[Outcome, ...] = ("answered", "no_answer", "busy", "rejected", "failed", "no_binding", "unknown")
HANGUP_BY: tuple[HangupBy, ...] = ("caller", "callee", "system", "unknown")
DIRECTIONS: tuple[Direction, ...] = ("inbound", "outbound")

# Q.850 causes that say why a call was not answered (16, NORMAL_CLEARING, says nothing
# about that: answered calls and calls given up on both end with it).
_Q850: dict[int, Outcome] = {
    17: "busy",
    18: "no_answer",
    19: "no_answer",
    20: "no_answer",
    21: "rejected",
    1: "failed",
    3: "failed",
    22: "failed",
    27: "failed",
    28: "failed",
    34: "failed",
    38: "failed",
    41: "failed",
    42: "failed",
    102: "failed",
    127: "failed",
}
_Q850_NAMES: dict[str, Outcome] = {
    "USER_BUSY": "busy",
    "NO_USER_RESPONSE": "no_answer",
    "NO_ANSWER": "no_answer",
    "SUBSCRIBER_ABSENT": "no_answer",
    "ORIGINATOR_CANCEL": "no_answer",
    "CALL_REJECTED": "rejected",
    "UNALLOCATED_NUMBER": "failed",
    "NO_ROUTE_DESTINATION": "failed",
    "NUMBER_CHANGED": "failed",
    "DESTINATION_OUT_OF_ORDER": "failed",
    "INVALID_NUMBER_FORMAT": "failed",
    "NORMAL_CIRCUIT_CONGESTION": "failed",
    "NETWORK_OUT_OF_ORDER": "failed",
    "NORMAL_TEMPORARY_FAILURE": "failed",
    "RECOVERY_ON_TIMER_EXPIRE": "failed",
    "INTERWORKING": "failed",
}


def from_q850(code: int | None, cause: str = "") -> Outcome | None:
    """What a Q.850 cause (code, or its name such as ``USER_BUSY``) says about an
    unanswered call; None when it says nothing (16, 0, unknown)."""
    if code and code in _Q850:
        return _Q850[code]
    return _Q850_NAMES.get(cause.strip().upper())


def from_sip(code: str | int | None) -> Outcome | None:
    """What a final SIP status says about an unanswered call (486 busy, 603 declined...)."""
    try:
        status = int(str(code).strip())
    except ValueError:
        return None
    if status in (486, 600):
        return "busy"
    if status in (603, 403):
        return "rejected"
    if status in (408, 480, 487):
        return "no_answer"
    if 400 <= status < 700:
        return "failed"
    return None


def from_text(*texts: str) -> Outcome | None:
    """What NXCLOUD's free-text statuses say (the CDR page API's ``callStatus`` and
    ``hangupReason``): only words that cannot be misread."""
    words = " ".join(texts).lower()
    if "busy" in words:
        return "busy"
    if "reject" in words or "declin" in words:
        return "rejected"
    if "fail" in words or "abnormal" in words or "error" in words:
        return "failed"
    return None


def unanswered(*findings: Outcome | None, ended: bool = True) -> Outcome:
    """The outcome of a call that was not answered: the first thing that says why, else
    ``no_answer`` for a call that ended, ``unknown`` for one we cannot tell about."""
    for finding in findings:
        if finding is not None:
            return finding
    return "no_answer" if ended else "unknown"


def hangup_by_party(party: Party | None, direction: Direction | None) -> HangupBy:
    """The call centre's agent or customer as caller or callee: the customer calls in,
    the agent (or the dialler) calls out."""
    if party == "system":
        return "system"
    if party is None or direction is None:
        return "unknown"
    calling = "customer" if direction == "inbound" else "agent"
    return "caller" if party == calling else "callee"
