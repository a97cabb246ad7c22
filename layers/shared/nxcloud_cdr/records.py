"""The normalised call record every source is mapped to, and what identifies a copy.

A record is what the store writes: NXCLOUD's id, the few fields every lookup needs
(start time, numbers, binding), every field of the payload normalised, the names of
fields the models do not know, and the body exactly as received.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class CallRecord:
    kind: str
    nxcloud_id: str
    raw: str
    content_hash: str
    completeness: int
    start: datetime | None = None
    caller: str | None = None
    callee: str | None = None
    did: str | None = None
    bind_id: str | None = None
    customer_bind_id: str | None = None
    duration_sec: int | None = None
    status_name: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    unknown_fields: tuple[str, ...] = ()


def content_hash(payload: Any) -> str:
    """Hash of the payload's content: key order and white space do not change it."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def completeness(payload: Any) -> int:
    """How many leaf values carry information (not null, "", 0, [] or {}).

    Decides which of two different copies of one record is kept: a copy that gained a
    recording URL or an answer time counts more than the copy it corrects.
    """
    if isinstance(payload, dict):
        return sum(completeness(value) for value in payload.values())
    if isinstance(payload, list):
        return sum(completeness(value) for value in payload)
    if payload is None or payload == "" or payload is False:
        return 0
    if isinstance(payload, int | float) and payload == 0:
        return 0
    return 1
