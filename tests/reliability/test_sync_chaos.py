"""The sync under NXCLOUD's faults, bad rows, late records and kills at random points,
over many runs while time passes: in the end the table holds exactly the stand-in's
data set (each good row once, as sent) and every bad row is in quarantine."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nxcloud_cdr.config import SyncSettings
from nxcloud_cdr.nxcloud_api import NxcloudApiError, NxcloudClient
from nxcloud_cdr.store_errors import StoreError
from nxcloud_cdr.sync import CdrSync
from nxcloud_cdr.sync_state import SyncState
from nxcloud_cdr.write_rule import RecordWriter

from devtools.fake_nxcloud import FakeNxcloud, generate_records
from tests.functional.test_push_handlers import records, scan

# Near the real time: DynamoDB Local runs TTL, and a quarantine item written "in 2024"
# would be expired (and deleted) by the time the test looks for it.
START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
FAULTS = ["http500", "code88", "code99", "code1004", "hang", "malformed", "drop", "http429", "http429_json", "code429"]
SEEDS = range(6)


class Killed(BaseException):
    """The Lambda runtime killing the function mid-run (not an exception it handles)."""


class Clock:
    def __init__(self) -> None:
        self.now = START

    def ms(self) -> int:
        return int(self.now.timestamp() * 1000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeNxcloud]:
    with FakeNxcloud([], hang_seconds=0.3, clock_ms=clock.ms, retry_after=None) as server:
        yield server


def bad_rows(rng: random.Random, around_ms: int) -> list[dict[str, Any]]:
    """Rows no item can hold (quarantined) and rows with fields that cannot be
    normalised (stored, problems noted)."""
    at = around_ms + rng.randrange(3_600_000)
    return [
        {"startTime": at, "caller": "85200000001"},  # no callId
        {"callId": "k" * 1000 + str(at), "startTime": at},  # no key holds it
        {"callId": f"odd-{at}", "startTime": at, "mos": 1e-200, "answerTime": 10**22, "legList": [[[[1]]]]},
        {"callId": f"deep-{at}", "startTime": at + 1, "x": json.loads("[" * 35 + "]" * 35)},
    ]


@pytest.mark.parametrize("seed", SEEDS)
def test_sync_ends_with_exactly_the_data_set(ddb, store, push_env, fake, clock, seed, figures):
    rng = random.Random(seed)
    settings = SyncSettings.from_env(
        {
            **push_env,
            "SYNC_INITIAL_LOOKBACK_SECONDS": str(10 * 3600),  # covers the data set whenever the first run is
            "SYNC_WINDOW_MAX_SECONDS": "3600",
            "SYNC_OVERLAP_SECONDS": "600",
            "SYNC_DELAY_SECONDS": "120",
        }
    )
    first_ms = clock.ms() - 8 * 3_600_000
    fake.records = generate_records(400, first_ms, 8 * 3_600_000, seed=seed) + bad_rows(rng, first_ms)
    tally: Counter[str] = Counter()

    class KillingWriter(RecordWriter):
        """Killed before a write, or after it was applied and before anyone knew."""

        def write(self, *args: Any, **kwargs: Any) -> Any:
            if rng.random() < 0.004:
                tally["kills"] += 1
                raise Killed
            written = super().write(*args, **kwargs)
            if rng.random() < 0.004:
                tally["kills after a write"] += 1
                raise Killed
            return written

        def _put_if_unchanged(self, *args: Any, **kwargs: Any) -> bool:  # a merge, its copies kept
            if rng.random() < 0.05:
                tally["kills inside a merge"] += 1
                raise Killed
            return super()._put_if_unchanged(*args, **kwargs)

    def run(*, chaos: bool) -> str:
        budget = rng.randrange(1, 12) if chaos else 10**9  # page fetches before the time runs out
        calls = iter(range(10**9))

        def remaining_ms() -> int:
            return 600_000 if next(calls) < budget * 2 else 20_000

        api = NxcloudClient(
            fake.base_url,
            fake.access_key,
            fake.access_secret,
            read_timeout=0.2,
            sleep=lambda _: None,
            clock_ms=clock.ms,
        )
        writer = KillingWriter(ddb, settings.table_name) if chaos else RecordWriter(ddb, settings.table_name)
        state = SyncState(ddb, settings.table_name, "cc_cdr")
        sync = CdrSync(api, store, writer, state, settings, now=lambda: clock.now, remaining_ms=remaining_ms)
        if chaos:
            faults = rng.choices(FAULTS, k=rng.randrange(0, 6))
            tally["api faults"] += len(faults)
            fake.inject(*faults)
        try:
            return sync.run_scheduled().status
        except Killed:
            return "killed"
        except (NxcloudApiError, StoreError):
            return "failed"  # five faults in a row: the run fails, the next one resumes

    for _ in range(12):
        clock.now += timedelta(minutes=rng.randrange(5, 30))
        # Late records: NXCLOUD shows calls minutes after they ended, inside the overlap.
        checkpoint = SyncState(ddb, settings.table_name, "cc_cdr").checkpoint()
        if checkpoint is not None and rng.random() < 0.7:
            late_ms = (checkpoint - rng.randrange(0, 500)) * 1000
            fake.records += generate_records(rng.randrange(1, 20), late_ms, 1000, seed=rng.randrange(10**6))
        # A record NXCLOUD corrects (a recording link appears) after it was read, while
        # it is still inside the overlap that the next window reads again.
        answered = [
            r
            for r in fake.records
            if r.get("recordUrl") is None
            and "callId" in r
            and checkpoint
            and r["startTime"] > (checkpoint - 500) * 1000
        ]
        if answered and rng.random() < 0.5:
            rng.choice(answered)["recordUrl"] = f"https://record.example/late-{rng.randrange(10**6)}.mp3"
        tally[run(chaos=True)] += 1
    fake.faults.clear()
    # Calm again: the next runs catch up (every record NXCLOUD shows is read again in
    # the overlap, so corrections made after a read are caught too).
    clock.now += timedelta(minutes=15)
    while run(chaos=False) != "complete":
        pass

    good = [r for r in fake.records if "callId" in r and len(r["callId"]) < 900]
    stored = {item["nxcloudId"]: item for item in records(ddb, push_env["TABLE_NAME"]) if item.get("kind") == "cc_cdr"}
    reachable = [r for r in good if r["startTime"] // 1000 <= clock.ms() // 1000 - 120]
    assert set(stored) == {r["callId"] for r in reachable}
    for record in reachable:
        item = stored[record["callId"]]
        assert json.loads(item["raw"]) == record, record["callId"]
    kept = scan(ddb, push_env["QUARANTINE_TABLE_NAME"])
    assert sorted(item["reason"] for item in kept) == ["missing_id", "unstorable"]
    assert all(item["source"] == "sync" and item["page"] >= 1 for item in kept)
    assert stored[next(r["callId"] for r in good if r["callId"].startswith("odd-"))]["problems"]
    tally["records"] = len(stored)
    figures(f"seed {seed}", dict(sorted(tally.items())))
