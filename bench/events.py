"""The sample events of events/ for each push kind, with a fresh NXCLOUD id each time
(so that each push is a new record), and the Lambda context the handlers are given.

The id is found by mapping the sample body with the kind's own mapper
(``nxcloud_cdr.kinds.PUSH_KINDS``), then replaced in the body text by another of the
same length and alphabet: the body keeps its exact size and layout.
"""

from __future__ import annotations

import copy
import json
import random
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from devtools import REPO_ROOT

EVENTS_DIR = REPO_ROOT / "events"
PAYLOADS_DIR = EVENTS_DIR / "payloads"
_rng = random.Random()
_used: set[str] = set()


def zone_of(text: str) -> tzinfo:
    """NXCLOUD_TIMEZONE as the layer reads it: an offset (+08:00, UTC+7) or an IANA name."""
    value = text.strip().upper().removeprefix("UTC").removeprefix("GMT") or "+00:00"
    if value[0] in "+-":
        sign = -1 if value[0] == "-" else 1
        hours, _, minutes = value[1:].partition(":")
        return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))
    return UTC if text.strip().upper() in ("UTC", "Z") else ZoneInfo(text.strip())


def event_file(kind: str, variant: str = "") -> Path:
    """events/<route>[-variant].json: a kind's samples are named after its route
    (/v1/cc/call-log/{token}: cc-call-log.json)."""
    from nxcloud_cdr.kinds import PUSH_KINDS  # noqa: PLC0415 - the layer, on the dev path

    route = PUSH_KINDS[kind].path.removeprefix("/v1/").removesuffix("/{token}")
    stem = route.replace("/", "-") + (f"-{variant}" if variant else "")
    return EVENTS_DIR / f"{stem}.json"


def load_event(path: Path) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return event


def path_token(event: dict[str, Any]) -> str:
    return str((event.get("pathParameters") or {}).get("token") or "")


def bad_body_event(kind: str) -> dict[str, Any]:
    """The kind's sample of a body that is not JSON (events/<kind>-bad-body.json), or its
    sample event with events/payloads/bad-body.txt as the body."""
    path = event_file(kind, "bad-body")
    if path.is_file():
        return load_event(path)
    event = load_event(event_file(kind))
    event["body"] = (PAYLOADS_DIR / "bad-body.txt").read_text(encoding="utf-8")
    event["isBase64Encoded"] = False
    return event


def _fresh_like(original: str) -> str:
    if original.isdigit():
        alphabet, first = string.digits, "123456789"
    elif all(char in "0123456789abcdef" for char in original):
        alphabet, first = "0123456789abcdef", "123456789abcdef"
    elif all(char in string.ascii_letters + string.digits for char in original):
        alphabet = first = string.ascii_letters + string.digits
    else:
        alphabet = first = string.ascii_lowercase + string.digits
    for _ in range(1000):
        candidate = _rng.choice(first) + "".join(_rng.choice(alphabet) for _ in range(len(original) - 1))
        if candidate != original and candidate not in _used:
            _used.add(candidate)
            return candidate
    raise RuntimeError(f"no fresh id like {original!r} left")


def map_record(kind: str, payload: dict[str, Any], text: str, zone: tzinfo) -> Any:
    """The record the layer maps a payload of ``kind`` to (``PUSH_KINDS[kind].map``, or
    ``.mapper`` as before)."""
    from nxcloud_cdr.kinds import PUSH_KINDS  # noqa: PLC0415 - the layer, on the dev path

    push_kind = PUSH_KINDS[kind]
    mapper = getattr(push_kind, "map", None) or push_kind.mapper
    return mapper(payload, text, zone)


def request_id() -> str:
    """An API Gateway HTTP API request id (16 characters, as they look)."""
    return "".join(_rng.choice(string.ascii_letters + string.digits) for _ in range(15)) + "="


@dataclass
class PushSample:
    """A kind's sample event and what identifies its record in the body."""

    kind: str
    event: dict[str, Any]
    nxcloud_id: str

    @classmethod
    def load(cls, kind: str, zone: tzinfo) -> PushSample:
        event = load_event(event_file(kind))
        text = body_text(event)
        record = map_record(kind, json.loads(text), text, zone)
        nxcloud_id = str(record.nxcloud_id)
        if nxcloud_id not in text:
            raise ValueError(f"the id {nxcloud_id!r} of the {kind} sample is not in its body as text")
        return cls(kind, event, nxcloud_id)

    def fresh(self) -> tuple[dict[str, Any], str]:
        """The sample event with a new id in its body (and a new API request id)."""
        new_id = _fresh_like(self.nxcloud_id)
        event = copy.deepcopy(self.event)
        event["body"] = body_text(self.event).replace(self.nxcloud_id, new_id)
        event["isBase64Encoded"] = False
        context = event.setdefault("requestContext", {})
        context["requestId"] = request_id()
        return event, new_id


def body_text(event: dict[str, Any]) -> str:
    if event.get("isBase64Encoded"):
        import base64  # noqa: PLC0415

        return base64.b64decode(event.get("body") or "").decode("utf-8")
    return str(event.get("body") or "")


@dataclass
class LambdaContext:
    """What Lambda's Python runtime passes as ``context`` (Powertools'
    ``inject_lambda_context`` reads these), with names as long as real ones."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    timeout_ms: int
    function_version: str = "$LATEST"

    def __post_init__(self) -> None:
        import time  # noqa: PLC0415

        self._deadline = time.monotonic() * 1000 + self.timeout_ms
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"2026/01/01/[$LATEST]{uuid.uuid4().hex}"

    def get_remaining_time_in_millis(self) -> int:
        import time  # noqa: PLC0415

        return max(0, int(self._deadline - time.monotonic() * 1000))


def deployed_name(logical_id: str, stack: str = "nxcloud-cdr") -> str:
    """A function name as CloudFormation makes it: stack, logical id, 12 characters."""
    suffix = "".join(_rng.choice(string.ascii_letters + string.digits) for _ in range(12))
    return f"{stack}-{logical_id}-{suffix}"[:64]


def lambda_context(function_name: str, memory_mb: int, timeout_s: int) -> LambdaContext:
    return LambdaContext(
        function_name=function_name,
        memory_limit_in_mb=memory_mb,
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}",
        aws_request_id=str(uuid.uuid4()),
        timeout_ms=timeout_s * 1000,
    )
