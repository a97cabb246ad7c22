"""API Gateway HTTP API (payload format 2.0): reading requests and building responses."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpRequest:
    body: bytes
    path_token: str
    source_ip: str
    request_id: str
    # The request's headers, names in lower case (API Gateway's payload 2.0 gives them so).
    headers: dict[str, str]


def read_request(event: dict[str, Any]) -> HttpRequest:
    """The parts of an HTTP API event a receiver uses. Never raises on odd events:
    a body that is not valid base64 is kept as the text it is."""
    raw_body = event.get("body") or ""
    body = raw_body.encode("utf-8") if isinstance(raw_body, str) else bytes(raw_body)
    if event.get("isBase64Encoded"):
        with contextlib.suppress(binascii.Error, ValueError):
            body = base64.b64decode(body, validate=True)
    context = event.get("requestContext") or {}
    return HttpRequest(
        body=body,
        path_token=str((event.get("pathParameters") or {}).get("token") or ""),
        source_ip=str((context.get("http") or {}).get("sourceIp") or ""),
        request_id=str(context.get("requestId") or ""),
        headers={str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()},
    )


def json_response(status: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(payload, separators=(",", ":")),
    }


def error_response(status: int, error: str, message: str, **extra: Any) -> dict[str, Any]:
    """A 4xx/5xx answer naming the problem; never a stack trace."""
    return json_response(status, {"ok": False, "error": error, "message": message, **extra})
