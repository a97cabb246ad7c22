"""Push token rotation on moto's Secrets Manager: the previous token stays accepted for
the overlap, a failed refresh keeps the cached tokens, and no token is ever empty.

Token values appear in no assertion message: comparisons are on what `match` answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from nxcloud_cdr import aws_clients
from nxcloud_cdr.config import PushSettings
from nxcloud_cdr.push_auth import (
    PushToken,
    PushTokens,
    SecretsManagerTokens,
    push_token_from_settings,
)
from nxcloud_cdr.secret_store import SECRETS_CONFIG

HOUR = 3600.0
OVERLAP_HOURS = 72


class Clocks:
    """The wall clock (overlap) and the monotonic clock (refresh schedule), both moved by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.wall = datetime.now(tz=UTC).timestamp()
        self.mono = 1000.0
        monkeypatch.setattr("nxcloud_cdr.push_auth.time.monotonic", lambda: self.mono)

    def now(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> Clocks:
    return Clocks(monkeypatch)


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    counted: list[str] = []
    monkeypatch.setattr("nxcloud_cdr.push_auth.count", lambda name, *_, **__: counted.append(name))
    return counted


@pytest.fixture
def secret() -> Iterator[tuple[Any, str]]:
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(Name="push-token", SecretString="token-A")["ARN"]
        yield client, arn


def rotate(client: Any, arn: str, value: str) -> None:
    client.put_secret_value(SecretId=arn, SecretString=value)


def make_token(arn: str, clocks: Clocks, client: Any = None, max_age: float = 300) -> PushToken:
    load = SecretsManagerTokens(
        arn,
        OVERLAP_HOURS * HOUR,
        client_factory=(lambda: client) if client else lambda: boto3.client("secretsmanager", region_name="us-east-1"),
        clock=clocks.now,
    )
    return PushToken(load, max_age, clock=clocks.now)


def test_rotation_accepts_current_and_previous_until_the_overlap_ends(secret, clocks):
    client, arn = secret
    token = make_token(arn, clocks)
    assert token.match("token-A") == "current"
    assert token.match("token-B") is None

    rotate(client, arn, "token-B")
    assert token.match("token-B") is None  # not re-read yet: the cached value holds for max age
    clocks.advance(301)
    assert token.match("token-B") == "current"
    assert token.match("token-A") == "previous"
    assert token.matches("token-A") and token.matches("token-B")

    clocks.advance(OVERLAP_HOURS * HOUR - 600)  # just inside the overlap (B was created ~301 s ago)
    assert token.match("token-A") == "previous"
    clocks.wall += 600  # the overlap has ended, and that counts before the next refresh
    assert token.match("token-A") is None
    assert not token.matches("token-A")
    assert token.match("token-B") == "current"


def test_only_the_last_previous_token_is_accepted(secret, clocks):
    client, arn = secret
    token = make_token(arn, clocks, max_age=0)
    rotate(client, arn, "token-B")
    assert (token.match("token-A"), token.match("token-B")) == ("previous", "current")

    rotate(client, arn, "token-C")

    assert (token.match("token-A"), token.match("token-B"), token.match("token-C")) == (None, "previous", "current")


def test_never_rotated_secret_has_only_a_current_token(secret, clocks):
    _, arn = secret
    token = make_token(arn, clocks)

    assert token.match("token-A") == "current"
    assert token.match("AWSPREVIOUS") is None
    assert token.match("") is None


def test_previous_version_is_not_read_once_the_overlap_is_over(secret, clocks):
    client, arn = secret
    rotate(client, arn, "token-B")
    calls: list[dict[str, Any]] = []
    real = client.get_secret_value

    def counting(**call: Any) -> Any:
        calls.append(call)
        return real(**call)

    client.get_secret_value = counting
    token = make_token(arn, clocks, client=client)
    assert token.match("token-A") == "previous"
    assert [call["VersionStage"] for call in calls] == ["AWSCURRENT", "AWSPREVIOUS"]

    clocks.advance(OVERLAP_HOURS * HOUR + 1)
    calls.clear()
    assert token.match("token-A") is None
    assert [call["VersionStage"] for call in calls] == ["AWSCURRENT"]


def test_failed_refresh_keeps_the_cached_tokens_and_retries_soon(secret, clocks, metrics, log_output):
    client, arn = secret
    rotate(client, arn, "token-B")
    real = client.get_secret_value
    failing = {"on": False}
    calls: list[str] = []

    def flaky(**call: Any) -> Any:
        calls.append(call["VersionStage"])
        if failing["on"]:
            raise client.exceptions.InternalServiceError({"Error": {"Code": "InternalServiceError"}}, "GetSecretValue")
        return real(**call)

    client.get_secret_value = flaky
    token = make_token(arn, clocks, client=client)
    assert token.match("token-B") == "current"

    failing["on"] = True
    clocks.advance(301)
    calls.clear()
    assert token.match("token-B") == "current"
    assert token.match("token-A") == "previous"
    assert token.match("token-X") is None
    assert calls == ["AWSCURRENT"]  # one failed read, not one per push
    assert metrics == ["TokenRefreshFailures"]
    warnings = [line for line in log_output().splitlines() if "push token refresh failed" in line]
    assert len(warnings) == 1
    assert "InternalServiceError" in warnings[0]

    clocks.advance(29)
    token.match("token-B")
    assert calls == ["AWSCURRENT"]  # the retry waits its 30 s
    failing["on"] = False
    rotate(client, arn, "token-C")
    clocks.advance(2)
    assert token.match("token-C") == "current"  # retried and picked the rotation up
    assert metrics == ["TokenRefreshFailures"]


def test_no_cached_token_and_a_failed_read_raises(secret, clocks, metrics):
    client, arn = secret

    def broken(**_: Any) -> Any:
        raise client.exceptions.InternalServiceError({"Error": {"Code": "InternalServiceError"}}, "GetSecretValue")

    client.get_secret_value = broken
    token = make_token(arn, clocks, client=client)

    with pytest.raises(client.exceptions.InternalServiceError):
        token.matches("token-A")
    with pytest.raises(client.exceptions.InternalServiceError):
        token.match("token-A")  # no cache: every push asks again (and is answered 503)
    assert metrics == ["TokenRefreshFailures", "TokenRefreshFailures"]


def test_a_missing_previous_version_is_no_error_but_other_errors_are(secret, clocks, metrics):
    client, arn = secret
    rotate(client, arn, "token-B")
    real = client.get_secret_value

    def denied_previous(**call: Any) -> Any:
        if call["VersionStage"] == "AWSPREVIOUS":
            raise client.exceptions.ClientError({"Error": {"Code": "AccessDeniedException"}}, "GetSecretValue")
        return real(**call)

    client.get_secret_value = denied_previous
    with pytest.raises(client.exceptions.ClientError):
        make_token(arn, clocks, client=client).match("token-B")


def test_empty_tokens_are_never_accepted(clocks):
    assert PushToken(lambda: PushTokens("", "", float("inf")), 300).match("") is None
    assert PushToken(lambda: PushTokens("tok", "", float("inf")), 300).match("") is None
    assert PushToken(lambda: PushTokens("", "old", float("inf")), 300).match("") is None
    assert PushToken(lambda: "tok", 300).match("tok") == "current"  # a plain string is the current token
    assert PushToken(lambda: "tok", 300).match("tok\udc80") is None  # no UnicodeEncodeError (-> 503)


def test_local_previous_token_is_accepted_while_set():
    base = {"TABLE_NAME": "t", "QUARANTINE_TABLE_NAME": "q", "PUSH_TOKEN": "local-new"}
    settings = PushSettings.from_env(base | {"PUSH_TOKEN_PREVIOUS": "local-old"})
    token = push_token_from_settings(settings)

    assert (token.match("local-new"), token.match("local-old"), token.match("other")) == ("current", "previous", None)
    assert push_token_from_settings(PushSettings.from_env(base)).match("local-old") is None
    assert "local-old" not in repr(settings)
    with pytest.raises(ValueError, match="PUSH_TOKEN_PREVIOUS") as error:
        PushSettings.from_env(
            {"TABLE_NAME": "t", "QUARANTINE_TABLE_NAME": "q", "PUSH_TOKEN_SECRET_ID": "arn"}
            | {"PUSH_TOKEN_PREVIOUS": "local-old"}
        )
    assert "local-old" not in str(error.value)


def test_overlap_setting_default_and_bounds():
    base = {"TABLE_NAME": "t", "QUARANTINE_TABLE_NAME": "q", "PUSH_TOKEN_SECRET_ID": "arn"}
    assert PushSettings.from_env(base).push_token_overlap_hours == 72
    assert PushSettings.from_env(base | {"PUSH_TOKEN_OVERLAP_HOURS": "1"}).push_token_overlap_hours == 1
    with pytest.raises(ValueError, match="PUSH_TOKEN_OVERLAP_HOURS"):
        PushSettings.from_env(base | {"PUSH_TOKEN_OVERLAP_HOURS": "0"})


def test_deployed_settings_read_the_secret_with_one_short_timeout_client(monkeypatch):
    made: list[tuple[str, Any]] = []

    class FakeClient:
        def get_secret_value(self, **call: Any) -> dict[str, Any]:
            # Created long ago: the previous version is not even read.
            return {"SecretString": "tok\n", "CreatedDate": datetime(2020, 1, 1, tzinfo=UTC)}

    def client(service: str, config: Any = None) -> FakeClient:
        made.append((service, config))
        return FakeClient()

    monkeypatch.setattr(aws_clients, "client", client)
    settings = PushSettings.from_env(
        {
            "TABLE_NAME": "t",
            "QUARANTINE_TABLE_NAME": "q",
            "PUSH_TOKEN_SECRET_ID": "arn",
            "PUSH_TOKEN_MAX_AGE_SECONDS": "0",
        }
    )
    token = push_token_from_settings(settings)

    assert [token.match("tok") for _ in range(3)] == ["current"] * 3  # re-read each time (max age 0)
    assert made == [("secretsmanager", SECRETS_CONFIG)]  # one client for the container's life
    assert (SECRETS_CONFIG.connect_timeout, SECRETS_CONFIG.read_timeout) == (2, 3)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "read"),
    [("30", 30), (" 30 ", 30), ("30.0", 30), ("+30", 30), ("30.5", None), ("٣", None), ("nan", None), ("", None)],
)
def test_whole_number_settings_read_as_cloudformation_writes_them(value, read):
    base = {"TABLE_NAME": "t", "QUARANTINE_TABLE_NAME": "q", "PUSH_TOKEN": "x"}
    if read is None:
        with pytest.raises(ValueError, match="RETENTION_DAYS"):
            PushSettings.from_env(base | {"RETENTION_DAYS": value})
    else:
        assert PushSettings.from_env(base | {"RETENTION_DAYS": value}).retention_days == read


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "٣", "0"])
def test_number_settings_refuse_what_is_not_a_finite_positive_number(value):
    from nxcloud_cdr.config import SyncSettings

    with pytest.raises(ValueError, match="NXCLOUD_READ_TIMEOUT_SECONDS"):
        SyncSettings.from_env({"TABLE_NAME": "t", "QUARANTINE_TABLE_NAME": "q", "NXCLOUD_READ_TIMEOUT_SECONDS": value})
