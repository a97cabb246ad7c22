"""The sync function as Lambda runs it (functions/cc_cdr_sync/app.py, events/ files),
against DynamoDB Local and the stand-in NXCLOUD."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from nxcloud_cdr.config import SyncSettings
from nxcloud_cdr.nxcloud_api import NxcloudConfigError
from nxcloud_cdr.sync_handler import NotConfiguredError, credentials, parse_moment
from nxcloud_cdr.sync_state import SyncState

from devtools.fake_nxcloud import FakeNxcloud, generate_records
from tests.conftest import SYNC_FUNCTION, load_event
from tests.functional.test_sync import stored_records


@pytest.fixture
def fake() -> Iterator[FakeNxcloud]:
    now_ms = int(time.time() * 1000)
    records = generate_records(230, now_ms - 3 * 3600 * 1000, 2 * 3600 * 1000)
    with FakeNxcloud(records) as server:
        yield server


@pytest.fixture
def sync_env(ddb, fake, monkeypatch) -> FakeNxcloud:
    monkeypatch.setenv("NXCLOUD_API_BASE_URL", fake.base_url)
    monkeypatch.setenv("NXCLOUD_ACCESS_KEY", fake.access_key)
    monkeypatch.setenv("NXCLOUD_ACCESS_SECRET", fake.access_secret)
    monkeypatch.setenv("NXCLOUD_BACKOFF_SECONDS", "0")
    return fake


def metric_names(output: str) -> list[str]:
    blobs = [json.loads(line) for line in output.splitlines() if '"_aws"' in line]
    return [m["Name"] for blob in blobs for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]


def test_scheduled_event_syncs_and_reports(ddb, push_env, sync_env, invoke, capsys, log_output):
    result = invoke(SYNC_FUNCTION, load_event("cc-cdr-sync-scheduled.json"))

    assert result["status"] == "complete"
    assert result["new"] == 230 and result["pages"] >= 3
    assert set(stored_records(ddb, push_env)) == {record["callId"] for record in sync_env.records}
    state = SyncState(ddb, push_env["TABLE_NAME"], "cc_cdr")
    assert state.checkpoint() == result["checkpoint"]
    assert state.acquire("someone-else", now_ms=int(time.time() * 1000), ttl_ms=1000)  # lease released
    names = metric_names(capsys.readouterr().out)
    assert {"SyncPages", "SyncRecordsNew", "SyncRecordsUpdated", "SyncRecordsUnchanged", "SyncCheckpointLag"} <= set(
        names
    )
    finished = [json.loads(line) for line in log_output().splitlines() if "sync run finished" in line]
    assert finished[0]["new"] == 230 and finished[0]["sync"] == "cc_cdr"
    assert sync_env.access_secret not in log_output()


def test_backfill_event_does_not_move_the_checkpoint(ddb, push_env, sync_env, invoke):
    sync_env.records = generate_records(40, int(parse_moment("2024-01-02T00:00:00Z").timestamp() * 1000), 86_400_000)

    result = invoke(SYNC_FUNCTION, load_event("cc-cdr-sync-backfill.json"))

    assert (result["mode"], result["status"], result["new"]) == ("backfill", "complete", 40)
    assert SyncState(ddb, push_env["TABLE_NAME"], "cc_cdr").checkpoint() is None


def test_second_run_while_one_holds_the_lease_stops(ddb, push_env, sync_env, invoke, capsys):
    SyncState(ddb, push_env["TABLE_NAME"], "cc_cdr").acquire("running", now_ms=int(time.time() * 1000), ttl_ms=600_000)

    result = invoke(SYNC_FUNCTION, load_event("cc-cdr-sync-scheduled.json"))

    assert result == {"status": "busy"}
    assert sync_env.requests == []
    assert "SyncBusy" in metric_names(capsys.readouterr().out)


def test_the_same_event_delivered_twice_runs_once(ddb, push_env, sync_env, invoke, lambda_context, monkeypatch):
    """A second delivery under the same request id, while the first still runs, finds
    the lease taken: only one run moves the checkpoint."""
    from nxcloud_cdr import sync_handler
    from nxcloud_cdr.sync import CdrSync

    answers = []
    real_run = CdrSync.run_scheduled

    def run_twice(self):  # the duplicate arrives while the first run is under way
        answers.append(sync_handler.run(load_event("cc-cdr-sync-scheduled.json"), lambda_context))
        return real_run(self)

    monkeypatch.setattr(CdrSync, "run_scheduled", run_twice)
    sync_env.records = generate_records(10, int(time.time() * 1000) - 3_600_000, 1_800_000)

    first = invoke(SYNC_FUNCTION, load_event("cc-cdr-sync-scheduled.json"))

    assert answers == [{"status": "busy"}]
    assert first["status"] == "complete"


def test_stack_without_credentials_says_so_and_does_not_fail(ddb, push_env, monkeypatch, invoke, capsys, log_output):
    for name in ("NXCLOUD_ACCESS_KEY", "NXCLOUD_ACCESS_SECRET", "NXCLOUD_CREDENTIALS_SECRET_ID"):
        monkeypatch.delenv(name, raising=False)

    result = invoke(SYNC_FUNCTION, load_event("cc-cdr-sync-scheduled.json"))

    assert result["status"] == "not_configured"
    assert "SyncNotConfigured" in metric_names(capsys.readouterr().out)
    assert "sync not configured" in log_output()


def test_wrong_credentials_fail_the_run_loudly(ddb, push_env, sync_env, monkeypatch, invoke, capsys):
    monkeypatch.setenv("NXCLOUD_ACCESS_SECRET", "wrong")

    with pytest.raises(NxcloudConfigError, match="1003"):
        invoke(SYNC_FUNCTION, load_event("cc-cdr-sync-scheduled.json"))

    assert "SyncConfigErrors" in metric_names(capsys.readouterr().out)
    assert SyncState(ddb, push_env["TABLE_NAME"], "cc_cdr").checkpoint() is None


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ('{"accessKey": "AK", "accessSecret": "SK"}', ("AK", "SK")),
        ('{"accessKey": "", "accessSecret": ""}', None),
        ("not json", None),
        ('["AK", "SK"]', None),
    ],
)
def test_credentials_from_secrets_manager(push_env, secret, expected):
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="creds", SecretString=secret)["ARN"]
        settings = SyncSettings.from_env({**push_env, "NXCLOUD_CREDENTIALS_SECRET_ID": arn})
        if expected is None:
            with pytest.raises(NotConfiguredError):
                credentials(settings)
        else:
            assert credentials(settings) == expected


def test_a_credentials_secret_that_cannot_be_read_counts_as_a_failed_run(push_env, monkeypatch, invoke, capsys):
    # Secrets Manager down or denied happens before the run starts: SyncFailingAlarm must
    # still see it (not only Lambda's error count).
    monkeypatch.delenv("NXCLOUD_ACCESS_KEY", raising=False)
    monkeypatch.delenv("NXCLOUD_ACCESS_SECRET", raising=False)
    monkeypatch.setenv("NXCLOUD_CREDENTIALS_SECRET_ID", "nxcloud-credentials")
    # No such secret: GetSecretValue fails.
    with mock_aws(), pytest.raises(Exception, match="ResourceNotFound"):
        invoke(SYNC_FUNCTION, load_event("cc-cdr-sync-scheduled.json"))

    assert "SyncFailures" in metric_names(capsys.readouterr().out)


def test_a_lease_that_cannot_be_taken_counts_as_a_failed_run(push_env, sync_env, monkeypatch, invoke, capsys):
    monkeypatch.setenv("TABLE_NAME", "no-such-table")

    with pytest.raises(Exception, match=r"ResourceNotFound|non-existent table"):
        invoke(SYNC_FUNCTION, load_event("cc-cdr-sync-scheduled.json"))

    assert "SyncFailures" in metric_names(capsys.readouterr().out)
