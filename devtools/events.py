"""API Gateway HTTP API (payload format 2.0) events, as Lambda receives them.

Used to write ``events/`` (``python -m devtools.events``) and by the local server to
turn a real HTTP request into the event the deployed function would get.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import uuid
from typing import Any

from . import REPO_ROOT
from .template import Route, http_routes

EVENTS_DIR = REPO_ROOT / "events"
PAYLOADS_DIR = EVENTS_DIR / "payloads"
# Not a secret: the token the sample events and `make local` use until you set your own.
EXAMPLE_TOKEN = "local-example-token"  # noqa: S105 - published on purpose


def http_api_event(
    route: Route,
    path_parameters: dict[str, str],
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
    epoch_ms: int | None = None,
) -> dict[str, Any]:
    raw_path = route.path
    for name, value in path_parameters.items():
        raw_path = raw_path.replace("{" + name + "}", value)
    epoch_ms = epoch_ms if epoch_ms is not None else int(time.time() * 1000)
    request_id = request_id or uuid.uuid4().hex[:16]
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    headers = {name.lower(): value for name, value in (headers or {}).items()}
    user_agent = headers.get("user-agent", "")
    return {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "localapi",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": route.method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(epoch_ms / 1000)),
            "timeEpoch": epoch_ms,
        },
        "pathParameters": path_parameters,
        "body": text if text is not None else base64.b64encode(body).decode(),
        "isBase64Encoded": text is None,
    }


def _route(function: str) -> Route:
    return next(route for route in http_routes() if route.function == function)


# (event file, function, payload file or literal body, token)
SAMPLES: list[tuple[str, str, str, str]] = [
    ("pns-call-result.json", "PnsCallResultFunction", "pns-call-result.json", EXAMPLE_TOKEN),
    ("pns-call-result-duplicate.json", "PnsCallResultFunction", "pns-call-result.json", EXAMPLE_TOKEN),
    ("pns-call-result-unanswered.json", "PnsCallResultFunction", "pns-call-result-unanswered.json", EXAMPLE_TOKEN),
    ("pns-call-result-bad-body.json", "PnsCallResultFunction", "bad-body.txt", EXAMPLE_TOKEN),
    ("pns-call-result-missing-id.json", "PnsCallResultFunction", "pns-call-result-missing-id.json", EXAMPLE_TOKEN),
    ("pns-call-result-wrong-token.json", "PnsCallResultFunction", "pns-call-result.json", "not-the-token"),
    ("pns-binding-not-exist.json", "PnsBindingNotExistFunction", "pns-binding-not-exist.json", EXAMPLE_TOKEN),
    ("pns-binding-not-exist-bad-body.json", "PnsBindingNotExistFunction", "bad-body.txt", EXAMPLE_TOKEN),
    ("pns-binding-not-exist-wrong-token.json", "PnsBindingNotExistFunction", "pns-binding-not-exist.json", "wrong"),
    ("cc-report.json", "CcReportFunction", "cc-report.json", EXAMPLE_TOKEN),
    ("cc-report-unanswered.json", "CcReportFunction", "cc-report-unanswered.json", EXAMPLE_TOKEN),
    ("cc-report-bad-body.json", "CcReportFunction", "bad-body.txt", EXAMPLE_TOKEN),
    ("cc-report-wrong-token.json", "CcReportFunction", "cc-report.json", "not-the-token"),
    # The 2024 format, at the same URL.
    ("pns-call-result-2024.json", "PnsCallResultFunction", "pns-call-result-2024.json", EXAMPLE_TOKEN),
    (
        "pns-call-result-2024-unanswered.json",
        "PnsCallResultFunction",
        "pns-call-result-2024-unanswered.json",
        EXAMPLE_TOKEN,
    ),
    # NXCLOUD's call-centre call-log callback: the token in the path and in a header.
    ("cc-call-log.json", "CcCallLogFunction", "cc-call-log.json", EXAMPLE_TOKEN),
    ("cc-call-log-wrong-token.json", "CcCallLogFunction", "cc-call-log.json", "not-the-token"),
]


# Events of the sync function: EventBridge's scheduled event, and a backfill.
SYNC_EVENTS: dict[str, dict[str, Any]] = {
    "cc-cdr-sync-scheduled.json": {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2024-05-01T12:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/nxcloud-cdr-sync"],
        "detail": {},
    },
    "cc-cdr-sync-backfill.json": {"from": "2024-01-01T00:00:00Z", "to": "2024-01-08T00:00:00Z"},
    # The table's stream, as the recording archiver receives it (the filter passed it: the
    # PNS sample's record, its recording pending). The archiver reads the item itself.
    "recording-archiver-stream.json": {
        "Records": [
            {
                "eventID": "c81e728d9d4c2f636f067f89cc14862c",
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1700000000,
                    "Keys": {"pk": {"S": "ID#1604763745256783872"}, "sk": {"S": "pns_call_result"}},
                    "NewImage": {
                        "pk": {"S": "ID#1604763745256783872"},
                        "sk": {"S": "pns_call_result"},
                        "recordingState": {"S": "pending"},
                    },
                    "SequenceNumber": "100000000000000000001",
                    "SizeBytes": 120,
                    "StreamViewType": "NEW_IMAGE",
                },
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/nxcloud-cdr-records"
                "/stream/2024-01-01T00:00:00.000",
            }
        ]
    },
}


def _token_header(function: str, token: str) -> dict[str, str]:
    """The header a push type also carries its token in (the call-log callback's)."""
    from nxcloud_cdr.kinds import PUSH_KINDS  # noqa: PLC0415 - the layer, on the dev path

    header = next(kind.token_header for kind in PUSH_KINDS.values() if kind.function == function)
    return {header: token} if header else {}


def sample_events() -> dict[str, dict[str, Any]]:
    """The content of every file in events/ (deterministic, so a test can compare)."""
    events = dict(SYNC_EVENTS)
    for number, (name, function, payload, token) in enumerate(SAMPLES):
        body = (PAYLOADS_DIR / payload).read_bytes()
        events[name] = http_api_event(
            _route(function),
            {"token": token},
            body,
            headers={
                "content-type": "application/json;charset=UTF-8",
                "user-agent": "NXCLOUD-push",
                **_token_header(function, token),
            },
            source_ip="203.0.113.10",
            request_id=f"sample-{number:04d}",
            epoch_ms=1700000000000,
        )
    return events


def write_sample_events() -> None:
    for name, event in sample_events().items():
        (EVENTS_DIR / name).write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_sample_events()
    sys.stdout.write(f"wrote {len(SAMPLES) + len(SYNC_EVENTS)} events to {EVENTS_DIR}\n")
