"""Readable names of NXCLOUD's integer codes, as documented in the API seeds.

A value missing from a table is kept readable as ``unknown_<value>`` rather than
rejected: NXCLOUD adds codes without notice, and the integer is stored beside it.
"""

from __future__ import annotations

from collections.abc import Mapping

# PNS call result push.
PNS_CALL_STATUS: Mapping[int, str] = {0: "unknown", 1: "normal_end", 2: "abnormal_end"}
PNS_HANGUP: Mapping[int, str] = {0: "caller", 1: "callee"}

# Q.850 cause codes seen in PNS pushes; 0 with an empty hangupCause means "not set".
Q850_CAUSE: Mapping[int, str] = {
    1: "UNALLOCATED_NUMBER",
    3: "NO_ROUTE_DESTINATION",
    16: "NORMAL_CLEARING",
    17: "USER_BUSY",
    18: "NO_USER_RESPONSE",
    19: "NO_ANSWER",
    20: "SUBSCRIBER_ABSENT",
    21: "CALL_REJECTED",
    27: "DESTINATION_OUT_OF_ORDER",
    28: "INVALID_NUMBER_FORMAT",
    31: "NORMAL_UNSPECIFIED",
    34: "NORMAL_CIRCUIT_CONGESTION",
    38: "NETWORK_OUT_OF_ORDER",
    41: "NORMAL_TEMPORARY_FAILURE",
    102: "RECOVERY_ON_TIMER_EXPIRE",
    127: "INTERWORKING",
}

# Call-centre report push.
CC_CALL_TYPE: Mapping[int, str] = {1: "group_call_to_agent", 2: "incoming", 3: "outgoing"}
CC_HANGUP_REASON: Mapping[int, str] = {
    0: "outgoing_not_answered",
    1: "outgoing_hung_up",
    2: "transfer_ringing_hung_up",
    3: "transfer_successful_hung_up",
    4: "call_abnormality",
    5: "called_operator_no_service",
    6: "called_not_in_service_area",
    7: "called_busy",
    8: "incoming_not_answered",
    9: "incoming_hung_up",
}
CC_HANGING_DIRECTION: Mapping[int, str] = {0: "customer", 1: "agent", 3: "system"}

# Call-centre CDR page API. The record's direction and the request's direction filter
# are off by one: a record says 0 for inbound, the filter says 1.
CDR_DIRECTION: Mapping[int, str] = {0: "inbound", 1: "outbound", 2: "aicc"}
CDR_DIRECTION_FILTER: Mapping[str, int] = {"all": 0, "inbound": 1, "outbound": 2, "aicc": 3}
CDR_HANGUP_BY: Mapping[int, str] = {0: "agent", 1: "user", 2: "unknown"}

# PNS error codes of the binding-not-exist push (10001-10012 are other PNS errors).
PNS_ERROR_CODE: Mapping[int, str] = {10013: "binding_not_exist"}


def name_of(table: Mapping[int, str], value: int | None) -> str | None:
    if value is None:
        return None
    return table.get(value, f"unknown_{value}")
