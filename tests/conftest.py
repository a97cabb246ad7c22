"""Fixtures shared by every test: no real AWS, handlers loaded as Lambda loads them."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from nxcloud_cdr.receiver import reset_runtime

from devtools import REPO_ROOT
from devtools.events import EXAMPLE_TOKEN

EVENTS = REPO_ROOT / "events"
FUNCTIONS = {
    "PnsCallResultFunction": REPO_ROOT / "functions" / "pns_call_result" / "app.py",
    "PnsBindingNotExistFunction": REPO_ROOT / "functions" / "pns_binding_not_exist" / "app.py",
    "CcReportFunction": REPO_ROOT / "functions" / "cc_report" / "app.py",
    "CcCallLogFunction": REPO_ROOT / "functions" / "cc_call_log" / "app.py",
}
SYNC_FUNCTION = "CcCdrSyncFunction"
ARCHIVER_FUNCTION = "RecordingArchiverFunction"
PUBLISHER_FUNCTION = "ChangePublisherFunction"
ALL_FUNCTIONS = {
    **FUNCTIONS,
    SYNC_FUNCTION: REPO_ROOT / "functions" / "cc_cdr_sync" / "app.py",
    ARCHIVER_FUNCTION: REPO_ROOT / "functions" / "recording_archiver" / "app.py",
    PUBLISHER_FUNCTION: REPO_ROOT / "functions" / "change_publisher" / "app.py",
}

# Never reach a real account from a test, whatever the developer's shell holds.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    POWERTOOLS_METRICS_NAMESPACE="NxcloudCdrTest",
)


@dataclass
class LambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = "test-request"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def payload_text(name: str) -> str:
    return (EVENTS / "payloads" / name).read_text(encoding="utf-8")


def load_handler(function: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Import a function's app.py under a unique module name (all three are `app`)."""
    spec = importlib.util.spec_from_file_location(f"app_{function}", ALL_FUNCTIONS[function])
    assert spec and spec.loader
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.handler


def table_names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {"CallRecordsTable": f"records-{suffix}", "QuarantineTable": f"quarantine-{suffix}"}


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def push_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The environment template.yaml gives the functions, with fresh table names and
    the example token (tests never read Secrets Manager unless they say so)."""
    names = table_names()
    env = {
        "TABLE_NAME": names["CallRecordsTable"],
        "QUARANTINE_TABLE_NAME": names["QuarantineTable"],
        "PUSH_TOKEN": EXAMPLE_TOKEN,
        "NXCLOUD_TIMEZONE": "+08:00",
        "RETENTION_DAYS": "0",
        "QUARANTINE_RETENTION_DAYS": "30",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    yield env
    reset_runtime()


@pytest.fixture
def invoke(lambda_context: LambdaContext) -> Callable[..., dict[str, Any]]:
    """``invoke(function, event[, context])``: the function's handler, as Lambda calls it."""
    handlers: dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]] = {}

    def call(function: str, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        if function not in handlers:
            handlers[function] = load_handler(function)
        return handlers[function](event, context or lambda_context)

    return call


@pytest.fixture
def log_output() -> Iterator[Callable[[], str]]:
    """What the functions logged. Powertools' handler keeps the stdout it found at
    import, which pytest's capsys does not see, so point it at a buffer."""
    import io

    from nxcloud_cdr.observability import logger

    buffer = io.StringIO()
    handler = logger.registered_handler
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    yield buffer.getvalue
    handler.setStream(previous)  # type: ignore[attr-defined]


def as_read(item: dict[str, Any]) -> dict[str, Any]:
    """A stored item as a reader sees it: kind, id and hash spelled out, and the
    normalised fields rebuilt from ``raw`` (the item stores neither)."""
    from nxcloud_cdr.items import readable
    from nxcloud_cdr.kinds import normalised
    from nxcloud_cdr.times import parse_zone

    shown = readable(item)
    shown["fields"], shown["unknownFields"] = normalised(shown, parse_zone("+08:00"))
    return shown


def body_of(response: dict[str, Any]) -> dict[str, Any]:
    return json.loads(response["body"])


def event_with_body(name: str, body: str | bytes) -> dict[str, Any]:
    """A sample event with another body (as API Gateway would send it)."""
    event = load_event(name)
    if isinstance(body, bytes):
        import base64

        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    else:
        event["body"], event["isBase64Encoded"] = body, False
    return event


def repo_path(*parts: str) -> Path:
    return REPO_ROOT.joinpath(*parts)
