"""The archiver's answer to a stream batch: each item once, side by side, and the
records to try again (partial batch failures)."""

from __future__ import annotations

import threading
import time
from typing import Any

from nxcloud_cdr.recordings.archiver import ItemOutcome, handle_stream
from nxcloud_cdr.recordings.fetch import FetchError
from nxcloud_cdr.store import StoreError


def record(call_id: str, sequence: int) -> dict[str, Any]:
    return {
        "eventName": "MODIFY",
        "dynamodb": {
            "Keys": {"pk": {"S": f"ID#{call_id}"}, "sk": {"S": "pns_call_result"}},
            "SequenceNumber": str(sequence),
        },
    }


class Archiver:
    def __init__(self, outcomes: dict[str, Any], delay: float = 0.0) -> None:
        self.outcomes = outcomes
        self.delay = delay
        self.calls: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def archive(self, key: dict[str, Any], time_left: Any) -> ItemOutcome:
        with self._lock:
            self.calls.append(key["pk"])
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.delay)
        with self._lock:
            self.running -= 1
        outcome = self.outcomes.get(key["pk"], ItemOutcome(archived=1, bytes=10))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def run(archiver: Archiver, records: list[dict[str, Any]]) -> tuple[dict[str, Any], list[tuple[str, float]]]:
    counted: list[tuple[str, float]] = []
    fake: Any = archiver
    answer = handle_stream(
        {"Records": records}, fake, lambda: 300.0, lambda name, value=1: counted.append((name, value))
    )
    return answer, counted


def test_each_item_once_however_many_records_name_it():
    archiver = Archiver({})
    answer, counted = run(archiver, [record("a", 1), record("b", 2), record("a", 3)])
    assert answer == {"batchItemFailures": []}
    assert sorted(archiver.calls) == ["ID#a", "ID#b"]
    assert ("RecordingsArchived", 1) in counted


def test_items_are_archived_side_by_side():
    archiver = Archiver({}, delay=0.3)
    run(archiver, [record(str(number), number) for number in range(5)])
    assert archiver.most_at_once == 5


def test_what_may_pass_later_is_reported_and_what_cannot_is_not():
    retryable = ItemOutcome(failures=[FetchError("http", "HTTP 404", retryable=True)])
    refused = ItemOutcome(failures=[FetchError("refused", "off the list", retryable=False)])
    archiver = Archiver({"ID#late": retryable, "ID#evil": refused, "ID#down": StoreError("throttled")})
    answer, counted = run(
        archiver, [record("ok", 1), record("late", 2), record("evil", 3), record("down", 40), record("late", 100)]
    )
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": "2"}, {"itemIdentifier": "40"}, {"itemIdentifier": "100"}]
    }
    assert sorted(name for name, _ in counted if name != "RecordingsArchived" and name != "RecordingBytes") == [
        "RecordingFailures",
        "RecordingFailures",
        "RecordingStoreErrors",
    ]


def test_records_without_keys_are_skipped():
    archiver = Archiver({})
    assert run(archiver, [{"dynamodb": {"SequenceNumber": "1"}}, {}])[0] == {"batchItemFailures": []}
    assert archiver.calls == []
