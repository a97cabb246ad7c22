"""The sync against the stand-in NXCLOUD (real HTTP on loopback, signatures checked) and
DynamoDB Local: whatever failure is injected, the table ends up holding exactly the
stand-in's data set."""

from __future__ import annotations

import itertools
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from nxcloud_cdr.nxcloud_api import NxcloudApiError, NxcloudConfigError
from nxcloud_cdr.store_errors import StoreError
from nxcloud_cdr.sync_state import SyncState
from nxcloud_cdr.write_rule import RecordWriter

from devtools.fake_nxcloud import generate_records
from tests.conftest import as_read
from tests.functional.conftest import FIRST_MS, NOW_S, SPAN_MS
from tests.functional.test_push_handlers import records, scan

# The stand-in NXCLOUD (`fake`), the settings and `make_sync` are in conftest.py.


def stored_records(ddb, push_env) -> dict[str, dict]:
    items = [item for item in records(ddb, push_env["TABLE_NAME"]) if item.get("kind") == "cc_cdr"]
    by_id: dict[str, dict] = {}
    for item in items:
        assert item["nxcloudId"] not in by_id, "stored twice"
        by_id[item["nxcloudId"]] = item
    return by_id


def assert_table_is_data_set(ddb, push_env, records: list[dict]) -> None:
    stored = stored_records(ddb, push_env)
    assert set(stored) == {record["callId"] for record in records}
    for record in records:
        item = stored[record["callId"]]
        assert json.loads(item["raw"]) == record
        assert item["source"] == "sync"
        assert item["fields"]["startTimeMs"] == record["startTime"]


def checkpoint(ddb, settings) -> int | None:
    return SyncState(ddb, settings.table_name, "cc_cdr").checkpoint()


@pytest.mark.parametrize("count", [0, 1, 99, 100, 200, 250, 731])
def test_first_run_stores_exactly_the_data_set(ddb, push_env, fake, make_sync, settings, count):
    fake.records = generate_records(count, FIRST_MS, SPAN_MS, seed=count)

    report = make_sync().run_scheduled()

    assert report.status == "complete"
    assert report.new == count and report.updated == 0 and report.rejected == 0
    assert_table_is_data_set(ddb, push_env, fake.records)
    assert checkpoint(ddb, settings) == NOW_S - 120
    assert report.lag_seconds == 120
    assert all(request["signed"] for request in fake.requests)


def test_windows_are_bounded_and_overlap(ddb, push_env, fake, make_sync, settings):
    fake.records = generate_records(50, FIRST_MS, SPAN_MS)

    report = make_sync().run_scheduled()

    windows = sorted({(json.loads(r["body"])["startTime"], json.loads(r["body"])["endTime"]) for r in fake.requests})
    assert len(windows) == report.windows == 8  # 6 h 2 min in steps of 50 min
    assert all(end - start <= 3600 for start, end in windows)
    for (_, previous_end), (start, _) in itertools.pairwise(windows):
        assert start == previous_end - 600
    assert report.unchanged > 0  # the overlaps read records again; each is stored once
    assert len(stored_records(ddb, push_env)) == 50


def test_exact_multiple_of_100_reads_one_empty_page(ddb, push_env, fake, make_sync):
    fake.records = generate_records(200, FIRST_MS + 3_000_000, 600_000)  # all in one window

    make_sync().run_scheduled()

    pages = [json.loads(r["body"])["page"] for r in fake.requests]
    assert max(pages) == 3
    assert_table_is_data_set(ddb, push_env, fake.records)


def test_second_run_moves_on_and_reads_only_the_overlap(ddb, push_env, fake, make_sync, settings):
    fake.records = generate_records(120, FIRST_MS, SPAN_MS)
    make_sync().run_scheduled()
    fake.requests.clear()

    report = make_sync().run_scheduled()  # same "now": nothing new to read

    assert report.windows == 0 and fake.requests == []
    assert checkpoint(ddb, settings) == NOW_S - 120


@pytest.mark.parametrize("fault", ["http500", "code88", "code99", "code1004", "hang", "malformed", "drop"])
def test_transient_errors_then_success(ddb, push_env, fake, make_sync, fault):
    fake.records = generate_records(300, FIRST_MS, SPAN_MS)
    fake.inject(fault, fault)

    report = make_sync().run_scheduled()

    assert report.status == "complete"
    assert_table_is_data_set(ddb, push_env, fake.records)


@pytest.mark.parametrize("fault", ["code1003", "code1005"])
def test_configuration_error_fails_the_run_and_keeps_the_checkpoint(ddb, push_env, fake, make_sync, settings, fault):
    fake.records = generate_records(300, FIRST_MS, SPAN_MS)
    make_sync().run_scheduled()
    before = checkpoint(ddb, settings)
    fake.inject(fault)

    with pytest.raises(NxcloudConfigError):
        make_sync().backfill(NOW_S - 7200, NOW_S)

    assert checkpoint(ddb, settings) == before


def test_page_with_data_object_counts_as_empty(ddb, push_env, fake, make_sync):
    fake.records = []
    fake.inject("data_object")

    assert make_sync().run_scheduled().status == "complete"


@pytest.mark.parametrize("crash_after", [1, 3, 6])
def test_crash_after_page_k_then_next_run_stores_every_record_once(
    ddb, push_env, fake, make_sync, settings, store, crash_after
):
    fake.records = generate_records(700, FIRST_MS, SPAN_MS, seed=crash_after)

    class CrashingWriter(RecordWriter):
        writes = 0

        def write_many(self, *args, **kwargs):
            if CrashingWriter.writes == crash_after:
                raise RuntimeError("Lambda killed")  # not a StoreError: a crash, not a handled failure
            CrashingWriter.writes += 1
            return super().write_many(*args, **kwargs)

    with pytest.raises(RuntimeError, match="killed"):
        make_sync(writer_=CrashingWriter(ddb, settings.table_name)).run_scheduled()
    partial = checkpoint(ddb, settings)
    assert partial is None or partial < NOW_S - 120

    report = make_sync().run_scheduled()

    assert report.status == "complete"
    assert_table_is_data_set(ddb, push_env, fake.records)


def test_store_failure_fails_the_run_and_the_checkpoint_does_not_move(
    ddb, push_env, fake, make_sync, settings, monkeypatch
):
    fake.records = generate_records(100, FIRST_MS, SPAN_MS)

    # The writer's own client throttles every write (the sync's state and reads still work).
    throttled = boto3.client("dynamodb", endpoint_url=ddb.meta.endpoint_url)

    def throttle(**_: Any) -> None:
        error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
        raise ClientError(error, "PutItem")  # type: ignore[arg-type]

    monkeypatch.setattr(throttled, "put_item", throttle)
    monkeypatch.setattr(throttled, "transact_write_items", throttle)  # new records are written 100 at a time

    with pytest.raises(StoreError):
        make_sync(writer_=RecordWriter(throttled, settings.table_name)).run_scheduled()

    assert checkpoint(ddb, settings) is None


def test_stops_before_the_timeout_and_the_next_run_resumes(ddb, push_env, fake, make_sync, settings):
    fake.records = generate_records(400, FIRST_MS, SPAN_MS)
    budget = iter([600_000] * 5 + [10_000] * 100)  # five page fetches, then under the 30 s margin

    first = make_sync(remaining_ms=lambda: next(budget)).run_scheduled()

    assert first.status == "partial"
    assert first.checkpoint is not None
    assert first.checkpoint == checkpoint(ddb, settings)
    assert first.checkpoint < NOW_S - 120
    second = make_sync().run_scheduled()
    assert second.status == "complete"
    assert_table_is_data_set(ddb, push_env, fake.records)


def test_record_listed_twice_across_pages_is_one_item(ddb, push_env, fake, make_sync):
    records = generate_records(150, FIRST_MS + 3_000_000, 600_000)
    # NXCLOUD's order shifts between page requests: the 100th record shows again on page 2.
    ordered = sorted(records, key=lambda r: (r["startTime"], r["callId"]))
    fake.records = [*ordered[:100], dict(ordered[99]), *ordered[100:]]

    report = make_sync().run_scheduled()

    assert report.new == 150
    assert_table_is_data_set(ddb, push_env, records)


def test_record_that_changed_is_updated(ddb, push_env, fake, make_sync):
    fake.records = generate_records(30, FIRST_MS, SPAN_MS)
    missing = next(r for r in fake.records if r["recordUrl"] is None)
    make_sync().run_scheduled()
    missing["recordUrl"] = "https://record.example/appeared-later.mp3"

    report = make_sync().backfill(FIRST_MS // 1000 - 60, NOW_S)

    assert report.updated == 1 and report.new == 0
    assert stored_records(ddb, push_env)[missing["callId"]]["fields"]["recordUrl"].endswith("appeared-later.mp3")
    # Both copies are kept (the promise of docs/guarantees.md holds for the sync too).
    kept = [
        json.loads(as_read(item)["raw"]) for item in scan(ddb, push_env["TABLE_NAME"]) if item["sk"].startswith("v#")
    ]
    assert sorted(map(json.dumps, kept)) == sorted(map(json.dumps, [missing, dict(missing, recordUrl=None)]))


def test_backfill_stores_history_without_moving_the_checkpoint(ddb, push_env, fake, make_sync, settings):
    old_ms = FIRST_MS - 30 * 86_400_000
    fake.records = generate_records(250, old_ms, 2 * 86_400_000)

    report = make_sync().backfill(old_ms // 1000, old_ms // 1000 + 2 * 86_400)

    assert report.status == "complete" and report.new == 250
    assert report.windows == 48
    assert checkpoint(ddb, settings) is None
    assert_table_is_data_set(ddb, push_env, fake.records)


def test_backfill_that_runs_out_of_time_says_how_to_resume(ddb, push_env, fake, make_sync):
    old_s = FIRST_MS // 1000 - 30 * 86_400
    fake.records = generate_records(50, old_s * 1000, 86_400_000)
    budget = iter([600_000] * 3 + [0] * 100)

    report = make_sync(remaining_ms=lambda: next(budget)).backfill(old_s, old_s + 86_400)

    assert report.status == "partial"
    assert report.resume == {"from": report.reached, "to": old_s + 86_400, "window": 3600}
    rest = make_sync().backfill(report.resume["from"], report.resume["to"], report.resume["window"])
    assert rest.status == "complete"
    assert_table_is_data_set(ddb, push_env, fake.records)


def test_bad_records_in_a_page_are_quarantined_not_lost(ddb, push_env, fake, make_sync):
    good = generate_records(5, FIRST_MS, 60_000)
    bad = [
        {"startTime": FIRST_MS + 1, "caller": "1"},
        {"callId": "x" * 1000, "startTime": FIRST_MS + 2},
    ]
    odd = {"callId": "x1", "startTime": FIRST_MS + 2, "callDuration": "long", "mos": 1e-200, "answerTime": 10**22}
    fake.records = good + bad + [odd]

    report = make_sync().run_scheduled()

    assert (report.new, report.rejected) == (6, 2)
    kept = scan(ddb, push_env["QUARANTINE_TABLE_NAME"])
    assert sorted(item["reason"] for item in kept) == ["missing_id", "unstorable"]
    assert sorted(bytes(item["body"]).decode() for item in kept) == sorted(
        json.dumps(record, separators=(",", ":")) for record in bad
    )
    assert {(item["source"], item["page"]) for item in kept} == {("sync", 1)}
    assert all(item["windowFrom"] < FIRST_MS // 1000 < item["windowTo"] for item in kept)
    # A row with fields that cannot be normalised is stored, the problems noted.
    item = stored_records(ddb, push_env)["x1"]
    assert json.loads(item["raw"]) == odd
    assert sorted(problem.split(":")[0] for problem in item["problems"]) == ["answerTime", "callDuration"]
    assert item["fields"]["mos"] == "1e-200" and "durationSec" not in item  # rebuilt from raw, kept as text


def test_api_that_repeats_the_same_page_fails_instead_of_looping(ddb, push_env, fake, make_sync, monkeypatch):
    fake.records = generate_records(150, FIRST_MS + 3_000_000, 600_000)
    first_page = fake.page
    monkeypatch.setattr(fake, "page", lambda request: first_page({**request, "page": 1}))

    with pytest.raises(NxcloudApiError, match="not paging"):
        make_sync().run_scheduled()


def test_lease_stops_a_second_run(ddb, settings):
    state = SyncState(ddb, settings.table_name, "cc_cdr")

    assert state.acquire("run-1", now_ms=1_000, ttl_ms=60_000)
    assert not state.acquire("run-2", now_ms=2_000, ttl_ms=60_000)
    assert state.acquire("run-2", now_ms=62_000, ttl_ms=60_000)  # run-1 died: its lease expired
    state.release("run-1")  # not its lease any more: no effect
    assert not state.acquire("run-3", now_ms=63_000, ttl_ms=60_000)
    state.release("run-2")
    assert state.acquire("run-3", now_ms=64_000, ttl_ms=60_000)


def test_checkpoint_never_moves_back(ddb, settings):
    state = SyncState(ddb, settings.table_name, "cc_cdr")
    state.advance(2_000, now_iso="x")
    state.advance(1_000, now_iso="y")

    assert state.checkpoint() == 2_000


def test_window_too_busy_for_one_run_is_read_again_smaller(ddb, push_env, fake, make_sync, settings):
    fake.records = generate_records(900, FIRST_MS, 3_600_000, seed=3)  # 9 pages in the first window
    state = SyncState(ddb, settings.table_name, "cc_cdr")
    runs = []
    for _ in range(8):
        budget = iter([600_000] * 8 + [0] * 1000)  # about four pages a run
        report = make_sync(remaining_ms=lambda budget=budget: next(budget)).run_scheduled()
        runs.append((report.status, report.window_seconds, report.windows))
        if report.status == "complete":
            break

    assert runs[0] == ("partial", 3600, 0) and runs[1][1] == 1800  # halved: one window took the whole run
    sizes = [seconds for _, seconds, _ in runs]
    assert sizes == sorted(sizes, reverse=True)  # no growing back while behind
    assert sum(windows for _, _, windows in runs[1:]) >= 3  # and it moves on
    assert min(seconds for _, seconds, _ in runs) >= 600 + 60  # never below the overlap and a minute
    finish = make_sync().run_scheduled()
    assert finish.status == "complete"
    for _ in range(3):  # caught up: it grows back, doubling each run
        make_sync().run_scheduled()
    assert state.window_seconds() == 3600
    assert_table_is_data_set(ddb, push_env, fake.records)


def test_record_that_moves_between_pages_between_two_runs_is_not_missed(ddb, push_env, fake, make_sync):
    records = generate_records(250, FIRST_MS + 3_000_000, 600_000, seed=5)  # one window, 3 pages
    fake.records = sorted(records, key=lambda r: (r["startTime"], r["callId"]))
    budget = iter([600_000] * 4 + [0] * 1000)  # pages 1 and 2, then out of time
    assert make_sync(remaining_ms=lambda: next(budget)).run_scheduled().status == "partial"
    # NXCLOUD corrects a record of page 1: it moves to the end, every later row one place up.
    fake.records[0]["startTime"] = fake.records[-1]["startTime"]

    make_sync().run_scheduled()

    assert_table_is_data_set(ddb, push_env, fake.records)


def test_rows_that_are_not_records_or_repeat_a_field_are_quarantined_one_by_one(ddb, push_env, fake, make_sync):
    good = generate_records(3, FIRST_MS, 60_000)
    fake.records = good
    original = fake.page

    def page(request):
        rows = original(request)
        return [*rows, None, "text"] if request["page"] == 1 and request["startTime"] <= FIRST_MS // 1000 else rows

    fake.page = page
    report = make_sync().run_scheduled()

    assert report.status == "complete" and report.rejected >= 2
    reasons = {item["reason"] for item in scan(ddb, push_env["QUARANTINE_TABLE_NAME"])}
    assert reasons == {"not_an_object"}
    assert_table_is_data_set(ddb, push_env, good)


def test_a_row_naming_a_field_twice_deep_down_is_quarantined_with_every_value(ddb, push_env, fake, make_sync):
    good = generate_records(3, FIRST_MS, 60_000)
    deep = f'{{"callId":"deep-1","startTime":{FIRST_MS},"x":{"[" * 600}{{"a":1,"a":2}}{"]" * 600}}}'
    fake.records = good
    original = fake.page
    fake.page = lambda request: [*original(request), "DEEP"] if request["page"] == 1 else original(request)
    fake_answer = fake._answer

    def answer(path, headers, body):
        status, payload, *extra = fake_answer(path, headers, body)
        if isinstance(payload, dict) and "DEEP" in (payload.get("data") or []):
            text = json.dumps(payload).replace('"DEEP"', deep)
            return status, text.encode(), *extra
        return status, payload, *extra

    fake._answer = answer
    report = make_sync().run_scheduled()

    assert report.status == "complete" and report.rejected >= 1
    [kept] = {item["pk"]: item for item in scan(ddb, push_env["QUARANTINE_TABLE_NAME"])}.values()
    assert kept["reason"] == "duplicate_key" and bytes(kept["body"]).decode() == deep
    assert_table_is_data_set(ddb, push_env, good)


def test_rows_without_ids_on_full_pages_do_not_look_like_a_repeated_page(ddb, push_env, fake, make_sync):
    fake.records = [{"startTime": FIRST_MS + n, "caller": f"1{n}"} for n in range(250)]

    report = make_sync().run_scheduled()

    assert report.status == "complete" and report.rejected == 250


def test_burst_too_busy_even_for_the_least_window_still_moves_on(ddb, push_env, fake, make_sync, settings):
    # 900 calls in 10 minutes: the least window (overlap + 60 s) holds 9 pages, a run reads 4.
    fake.records = generate_records(900, FIRST_MS, 600_000, seed=3)
    runs = []
    for _ in range(14):
        budget = iter([600_000] * 8 + [0] * 1000)
        report = make_sync(remaining_ms=lambda budget=budget: next(budget)).run_scheduled()
        runs.append((report.window_seconds, checkpoint(ddb, settings)))

    at_least = [until for seconds, until in runs if seconds == 660 and until is not None]
    assert at_least == sorted(at_least) and len(set(at_least)) >= 4  # it moves on, never back
    assert make_sync().run_scheduled().status == "complete"
    assert_table_is_data_set(ddb, push_env, fake.records)


def test_a_window_stored_before_the_overlap_grew_is_made_large_enough(ddb, push_env, fake, make_sync, settings):
    fake.records = generate_records(10, FIRST_MS, 600_000, seed=3)
    state = SyncState(ddb, settings.table_name, "cc_cdr")
    state.advance(FIRST_MS // 1000, now_iso="x")
    state.set_window_seconds(660, now_iso="x")  # left by a busy period with a 600 s overlap
    sync = make_sync()
    sync._settings = settings.replace(overlap_seconds=1800)

    report = sync.run_scheduled()

    assert report.status == "complete" and report.window_seconds == 1860
    assert_table_is_data_set(ddb, push_env, fake.records)


def test_backfill_window_is_at_least_a_minute(ddb, push_env, fake, make_sync):
    fake.records = generate_records(10, FIRST_MS, 600_000, seed=3)
    start = FIRST_MS // 1000

    report = make_sync().backfill(start, start + 7200, -100)

    assert report.status == "complete" and report.window_seconds == 60
    starts = [json.loads(request["body"])["startTime"] for request in fake.requests]
    assert starts == sorted(starts) and starts[0] == start


def test_nxcloud_asking_to_come_back_later_does_not_shrink_the_window(ddb, push_env, fake, make_sync, settings):
    fake.records = generate_records(10, FIRST_MS, 600_000, seed=3)
    fake.retry_after = "600"
    fake.inject("http429")

    report = make_sync().run_scheduled()

    assert report.status == "partial"
    assert SyncState(ddb, settings.table_name, "cc_cdr").window_seconds() is None
    assert make_sync().run_scheduled().status == "complete"
