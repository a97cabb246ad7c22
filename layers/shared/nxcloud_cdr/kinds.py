"""The push types this product receives: one Lambda function each, one stored kind each.

A new push type (the call-centre call-log callback, the 2024 PNS format) is a model, a
mapper and an entry here; the receiver, the store and the handlers do not change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from .mapping import map_cc_report, map_pns_binding_not_exist, map_pns_call_result
from .records import CallRecord

Mapper = Callable[[dict[str, Any], str, tzinfo], CallRecord]


@dataclass(frozen=True)
class PushKind:
    name: str
    mapper: Mapper
    # The route of its function in template.yaml (a test keeps the two in step); the
    # operator tool replays quarantined bodies to it.
    path: str = ""


PNS_CALL_RESULT = PushKind("pns_call_result", map_pns_call_result, "/v1/pns/call-result/{token}")
PNS_BINDING_NOT_EXIST = PushKind(
    "pns_binding_not_exist", map_pns_binding_not_exist, "/v1/pns/binding-not-exist/{token}"
)
CC_REPORT = PushKind("cc_report", map_cc_report, "/v1/cc/report/{token}")

PUSH_KINDS: dict[str, PushKind] = {kind.name: kind for kind in (PNS_CALL_RESULT, PNS_BINDING_NOT_EXIST, CC_REPORT)}
