"""LogLevel=DEBUG must not write a secret to CloudWatch (issue 19): the functions that
read one from Secrets Manager, run with logging set up as Lambda's runtime sets it at
DEBUG (the root logger at DEBUG, every record kept, LOG_LEVEL/POWERTOOLS_LOG_LEVEL=DEBUG)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import boto3
import pytest
from nxcloud_cdr import observability
from nxcloud_cdr.config import SyncSettings
from nxcloud_cdr.receiver import reset_runtime
from nxcloud_cdr.sync_handler import credentials

from devtools import REPO_ROOT
from devtools.events import EXAMPLE_TOKEN
from devtools.fake_nxcloud import FakeNxcloud, generate_records
from tests.conftest import FUNCTIONS, SYNC_FUNCTION, load_event

CURRENT_TOKEN = "current-push-token-7f3a9c1e"
PREVIOUS_TOKEN = "previous-push-token-2b8d4e6f"
ACCESS_KEY = "debug-test-access-key"
ACCESS_SECRET = "debug-test-access-secret-5c1d9e"

EVENTS = {
    "PnsCallResultFunction": "pns-call-result.json",
    "PnsBindingNotExistFunction": "pns-binding-not-exist.json",
    "CcReportFunction": "cc-report.json",
    "CcCallLogFunction": "cc-call-log.json",
}


class Capture(logging.Handler):
    """Every record that reaches the root logger, as a line (message with its args,
    and any traceback), as Lambda's handler would write it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # moto answers in place of AWS and logs what it serves: not a line Lambda writes.
        if not record.name.startswith("moto"):
            self.lines.append(self.format(record))


class Written:
    """Every line written since ``clear()``: the root logger's and Powertools' (which
    does not propagate to the root)."""

    def __init__(self, capture: Capture, powertools: Callable[[], str]) -> None:
        self._capture, self._powertools = capture, powertools
        self._from = (0, 0)

    def clear(self) -> None:
        # The test's own setup calls (creating the secret) are not the function's lines.
        self._from = (len(self._capture.lines), len(self._powertools()))

    def __call__(self) -> list[str]:
        return [*self._capture.lines[self._from[0] :], *self._powertools()[self._from[1] :].splitlines()]


@pytest.fixture
def debug_logging(monkeypatch: pytest.MonkeyPatch, log_output: Callable[[], str]) -> Iterator[Written]:
    """The root logger at DEBUG as Lambda's runtime sets it for ApplicationLogLevel=DEBUG."""
    for name in ("AWS_LAMBDA_LOG_LEVEL", "LOG_LEVEL", "POWERTOOLS_LOG_LEVEL"):
        monkeypatch.setenv(name, "DEBUG")
    root = logging.getLogger()
    capture = Capture()
    root_level, powertools_level = root.level, observability.logger.log_level
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    observability.logger.setLevel("DEBUG")
    try:
        yield Written(capture, log_output)
    finally:
        root.removeHandler(capture)
        root.setLevel(root_level)
        observability.logger.setLevel(powertools_level)


def leaks(lines: list[str], *secrets: str) -> list[str]:
    return [line[:300] for line in lines if any(secret in line for secret in secrets)]


@pytest.mark.parametrize("log_event", [False, True])
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_push_token_never_logged_at_debug(aws, push_env, debug_logging, invoke, monkeypatch, function, log_event):
    # POWERTOOLS_LOGGER_LOG_EVENT=true is Powertools' documented switch for debugging: it
    # logged the whole event, the token in its path, at INFO.
    if log_event:
        monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="push-token", SecretString=PREVIOUS_TOKEN)["ARN"]
    secrets.put_secret_value(SecretId=arn, SecretString=CURRENT_TOKEN)  # a rotation: both versions are read
    monkeypatch.delenv("PUSH_TOKEN")
    monkeypatch.setenv("PUSH_TOKEN_SECRET_ID", arn)
    reset_runtime()
    debug_logging.clear()
    # The token where NXCLOUD sends it: the URL's path and, for the call log, a header.
    event = json.loads(json.dumps(load_event(EVENTS[function])).replace(EXAMPLE_TOKEN, CURRENT_TOKEN))

    response = invoke(function, event)

    assert response["statusCode"] == 200
    lines = debug_logging()
    assert any("push stored" in line for line in lines)  # DEBUG is on: the function's own line is there
    assert leaks(lines, CURRENT_TOKEN, PREVIOUS_TOKEN) == []


def test_nxcloud_api_secret_never_logged_at_debug(aws, push_env, debug_logging, invoke, monkeypatch):
    now_ms = int(time.time() * 1000)
    records = generate_records(5, now_ms - 3 * 3600 * 1000, 2 * 3600 * 1000)
    secret = json.dumps({"accessKey": ACCESS_KEY, "accessSecret": ACCESS_SECRET})
    arn = boto3.client("secretsmanager").create_secret(Name="nxcloud-credentials", SecretString=secret)["ARN"]
    for name in ("NXCLOUD_ACCESS_KEY", "NXCLOUD_ACCESS_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NXCLOUD_CREDENTIALS_SECRET_ID", arn)
    monkeypatch.setenv("NXCLOUD_BACKOFF_SECONDS", "0")
    debug_logging.clear()

    with FakeNxcloud(records, access_key=ACCESS_KEY, access_secret=ACCESS_SECRET) as fake:
        monkeypatch.setenv("NXCLOUD_API_BASE_URL", fake.base_url)
        result = invoke(SYNC_FUNCTION, load_event("cc-cdr-sync-scheduled.json"))

    assert result["status"] == "complete" and result["new"] == 5  # signed with the secret read
    assert leaks(debug_logging(), ACCESS_SECRET) == []


def test_credentials_read_never_logged_at_debug(aws, push_env, debug_logging):
    # The read alone, in case the sync's run above stops before it is reached.
    secret = json.dumps({"accessKey": ACCESS_KEY, "accessSecret": ACCESS_SECRET})
    arn = boto3.client("secretsmanager").create_secret(Name="nxcloud-credentials", SecretString=secret)["ARN"]
    settings = SyncSettings.from_env({**push_env, "NXCLOUD_CREDENTIALS_SECRET_ID": arn})
    debug_logging.clear()

    assert credentials(settings) == (ACCESS_KEY, ACCESS_SECRET)
    assert leaks(debug_logging(), ACCESS_SECRET) == []


SDK = ("botocore", "boto3", "s3transfer", "urllib3", "requests")


@pytest.fixture
def sdk_levels() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.level, {name: logging.getLogger(name).level for name in SDK}
    yield
    root.setLevel(saved[0])
    for name, level in saved[1].items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(
    ("root_level", "held_at"),
    [(logging.DEBUG, logging.INFO), (logging.INFO, logging.INFO), (logging.WARNING, logging.WARNING)],
    ids=["debug", "info", "warning"],
)
def test_sdk_loggers_held_at_info_or_the_root_level(sdk_levels, root_level, held_at):
    logging.getLogger().setLevel(root_level)
    for name in SDK:
        logging.getLogger(name).setLevel(logging.NOTSET if name != "botocore" else logging.DEBUG)

    observability.hold_sdk_loggers()

    assert {name: logging.getLogger(name).getEffectiveLevel() for name in SDK} == dict.fromkeys(SDK, held_at)
    assert logging.getLogger("botocore.parsers").getEffectiveLevel() == held_at


# Lambda's order: the runtime sets the root logger's level, then imports the handler.
LAMBDA_ORDER = """
import json, logging, sys
lines = []
class Capture(logging.Handler):
    def emit(self, record):
        if not record.name.startswith("moto"):
            lines.append(logging.Formatter("%(name)s %(message)s").format(record))
logging.getLogger().setLevel(logging.DEBUG)
logging.getLogger().addHandler(Capture(logging.DEBUG))
import boto3
from moto import mock_aws
from devtools.template import create_tables
from tests.conftest import LambdaContext, load_event, load_handler
with mock_aws():
    create_tables(boto3.client("dynamodb"), {"CallRecordsTable": "records", "QuarantineTable": "quarantine"})
    boto3.client("secretsmanager").create_secret(Name="push-token", SecretString=sys.argv[1])
    del lines[:]
    event = load_event("pns-call-result.json")
    event["pathParameters"]["token"] = sys.argv[1]
    answer = load_handler("PnsCallResultFunction")(event, LambdaContext())
print(json.dumps({"status": answer["statusCode"], "lines": lines}))
"""


def test_push_token_never_logged_when_debug_is_set_before_import(push_env):
    """In a fresh interpreter, as in a new Lambda container: the root logger is at DEBUG
    before the handler (and the layer) is imported."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "layers" / "shared")]),
        "PUSH_TOKEN": "",
        "PUSH_TOKEN_SECRET_ID": "push-token",
        "TABLE_NAME": "records",
        "QUARANTINE_TABLE_NAME": "quarantine",
        **dict.fromkeys(("AWS_LAMBDA_LOG_LEVEL", "LOG_LEVEL", "POWERTOOLS_LOG_LEVEL"), "DEBUG"),
    }
    run = subprocess.run(
        [sys.executable, "-c", LAMBDA_ORDER, CURRENT_TOKEN],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(run.stdout.splitlines()[-1])

    assert result["status"] == 200
    assert any(line.startswith("botocore") for line in result["lines"])  # the SDK still logs, at INFO
    assert leaks(result["lines"], CURRENT_TOKEN) == []
