"""Issue 19's security items that live in the settings, the template and the push
token: each failed before its fix."""

from __future__ import annotations

import re
from typing import Any

import pytest
from nxcloud_cdr.config import PushSettings, SyncSettings
from nxcloud_cdr.push_auth import PushToken, TokenTrustExpiredError, push_token_from_settings

from devtools.template import load_template

TEMPLATE = load_template()
SYNC_ENV = {"TABLE_NAME": "t", "QUARANTINE_TABLE_NAME": "q", "SYNC_STATE_TABLE_NAME": "s"}


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api2.nxcloud.com", True),
        ("https://api-hk.nxlink.ai", True),
        ("http://api2.nxcloud.com", False),
        ("HTTP://api2.nxcloud.com", False),
        ("http://127.0.0.1.attacker.example", False),
        ("http://127.0.0.1@attacker.example", False),
        # urlsplit reads 127.0.0.1 or localhost as the host, requests (urllib3) the other one.
        ("http://192.0.2.2:8080\\@127.0.0.1", False),
        ("http://attacker.example\\@localhost:8089", False),
        ("http://user@127.0.0.1:8089", False),
        ("http://127.0.0.1:8089/\tx", False),
        ("ftp://api2.nxcloud.com", False),
        ("http://127.0.0.1:8080", True),  # the local stand-in
        ("http://localhost:8080", True),
        ("http://[::1]:8080", True),
    ],
)
def test_the_sync_signs_requests_for_https_alone(url, allowed):
    environment = SYNC_ENV | {"NXCLOUD_API_BASE_URL": url}
    if allowed:
        SyncSettings.from_env(environment).check()
    else:
        with pytest.raises(ValueError, match="NXCLOUD_API_BASE_URL"):
            SyncSettings.from_env(environment).check()


def test_the_templates_api_url_parameter_takes_https_alone():
    pattern = TEMPLATE["Parameters"]["NxcloudApiBaseUrl"]["AllowedPattern"]
    assert re.fullmatch(pattern, "https://api2.nxcloud.com")
    assert not re.fullmatch(pattern, "http://api2.nxcloud.com")


def _statements(function: str) -> list[dict[str, Any]]:
    policies = TEMPLATE["Resources"][function]["Properties"]["Policies"]
    return [statement for policy in policies if isinstance(policy, dict) for statement in policy["Statement"]]


def test_the_archiver_reads_its_own_tables_stream_alone():
    """SAM attaches AWSLambdaDynamoDBExecutionRole (stream reads on every stream): a Deny
    holds the role to this table's stream."""
    denies = [statement for statement in _statements("RecordingArchiverFunction") if statement["Effect"] == "Deny"]
    reads = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
    assert any(
        reads <= set(statement["Action"])
        and statement.get("NotResource") == {"Fn::GetAtt": ["CallRecordsTable", "StreamArn"]}
        for statement in denies
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_cached_token_is_trusted_no_longer_than_its_bound_while_reads_fail(monkeypatch):
    clock = Clock()
    monkeypatch.setattr("nxcloud_cdr.push_auth.time.monotonic", clock)
    reads = iter(["token-one"])

    def load() -> str:
        value = next(reads, None)
        if value is None:
            raise ConnectionError("Secrets Manager did not answer")
        return value

    token = PushToken(load, max_age_seconds=300, retry_seconds=30, trust_seconds=3_600)
    assert token.match("token-one") == "current"
    clock.now += 3_000  # refreshes fail from here on: the cached token is still trusted
    assert token.match("token-one") == "current"
    clock.now += 700  # past the bound after the last read that worked
    with pytest.raises(TokenTrustExpiredError):
        token.match("token-one")


def test_a_deployed_push_token_is_trusted_for_the_rotation_overlap():
    settings = PushSettings.from_env(
        {
            "TABLE_NAME": "t",
            "QUARANTINE_TABLE_NAME": "q",
            "PUSH_TOKEN_SECRET_ID": "arn:aws:secretsmanager:us-east-1:123456789012:secret:push",
            "PUSH_TOKEN_OVERLAP_HOURS": "72",
        }
    )
    assert push_token_from_settings(settings)._trust == 72 * 3600
