"""The arithmetic and the preparation of `make bench`'s row 9 (the change publisher)."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime
from typing import Any

import pytest
from nxcloud_cdr.dynamodb_types import serialise
from nxcloud_cdr.kinds import RECORD_KINDS
from nxcloud_cdr.times import parse_zone
from nxcloud_cdr.write_rule import build_item

from bench import costs
from bench.publisher import ChangeCost, objects_per_million_changes, parquet_rows, prepare
from devtools.fake_nxcloud import generate_records
from devtools.streams import lambda_json

ZONE = parse_zone("+08:00")


def insert_batch(count: int) -> dict[str, Any]:
    """A stream batch of ``count`` new call-centre calls, in Lambda's JSON."""
    records = []
    noon = int(datetime(2026, 1, 1, 12, tzinfo=UTC).timestamp() * 1000)  # one day partition
    rows = generate_records(count, noon, 600_000, seed=count)
    for number, row in enumerate(rows):
        record = RECORD_KINDS["cc_cdr"].map(row, json.dumps(row), ZONE)
        item = serialise(build_item(record, datetime.now(UTC), source="push", retention_days=0))
        stream = {"Keys": {"pk": item["pk"], "sk": item["sk"]}, "NewImage": item, "SequenceNumber": str(number + 1)}
        records.append({"eventName": "INSERT", "eventSource": "aws:dynamodb", "dynamodb": stream})
    event: dict[str, Any] = json.loads(json.dumps({"Records": records}, default=lambda_json))
    return event


def cost(changes: int, lake_bytes: int, **overrides: Any) -> ChangeCost:
    figures: dict[str, Any] = {
        "changes": changes,
        "billed_ms": 10,
        "log_bytes": 200.0,
        "lake_records": 1,
        "lake_bytes": lake_bytes,
        "memory_mb": 512,
        "chunks": 1.0,
        "envelope_bytes": 1200.0,
        "objects": objects_per_million_changes(300),
    }
    return ChangeCost(**(figures | overrides))


def test_a_change_alone_is_billed_a_5_kb_record_and_a_packed_batch_its_size_in_5_kb_steps():
    assert cost(1, 1039).firehose_bytes == 5 * 1024
    # 96,348 bytes in one record: 19 increments of 5 KB, shared by the batch's 100 changes.
    assert cost(100, 96_348).firehose_bytes == pytest.approx(19 * 5 * 1024 / 100)
    # Two records of a batch are each rounded up.
    assert cost(2, 2 * 1039, lake_records=2).firehose_bytes == 5 * 1024


def test_the_cost_is_its_parts_and_the_bus_and_lake_leave_out_the_publishers_lambda():
    one = cost(1, 1039)
    assert one.total == pytest.approx(sum(one.publisher.values()) + sum(one.bus_and_lake.values()))
    assert set(one.publisher) == {"lambda_requests", "lambda_duration", "lambda_logs"}
    assert one.publisher["lambda_requests"] == pytest.approx(costs.LAMBDA_REQUESTS_PER_MILLION)
    assert one.publisher["lambda_duration"] == pytest.approx(costs.LAMBDA_GB_SECOND * 0.5 * 0.010 * 1e6)
    assert one.bus_and_lake["eventbridge"] == pytest.approx(costs.EVENTBRIDGE_CUSTOM_EVENTS_PER_MILLION)
    # A batch of 100 shares one invocation: a hundredth of the requests.
    assert cost(100, 96_348).publisher["lambda_requests"] == pytest.approx(one.publisher["lambda_requests"] / 100)


def test_firehose_writes_an_object_per_buffer_interval_at_a_steady_million_calls_a_month():
    # 30 days of 300 s intervals = 8,640 objects a month, for 2 million changes.
    assert objects_per_million_changes(300) == pytest.approx(4320)


def test_prepare_builds_what_the_publisher_puts_for_a_batch():
    prepared = prepare("three", insert_batch(13), ZONE, "full")

    assert prepared.changes == 13
    assert [len(group) for group in prepared.entry_groups] == [10, 3]
    assert prepared.records == [b"".join(prepared.rows)]  # the rows packed into one record
    assert all(json.loads(row)["detail_type"] == "Call Record Created" for row in prepared.rows)
    assert prepared.entry_bytes == [
        len(entry["Source"]) + len(entry["DetailType"]) + len(entry["Detail"].encode())
        for group in prepared.entry_groups
        for entry in group
    ]


def test_parquet_rows_are_written_in_files_of_a_buffer_intervals_rows():
    rows = prepare("rows", insert_batch(20), ZONE, "full").rows

    # At a 60 s buffer a million calls a month (2 million changes) is about 46 rows a file:
    # the 20 rows are one file.
    size = parquet_rows(rows, 60)

    assert (size.rows, size.files) == (20, 1)
    assert 0 < size.per_row < statistics.mean(len(row) for row in rows)
