"""The archiver's answer to a stream batch: each item once, side by side, and the
records to try again (partial batch failures)."""

from __future__ import annotations

import threading
import time
from typing import Any

from nxcloud_cdr.recordings.archiver import ItemOutcome, handle_stream
from nxcloud_cdr.recordings.fetch import FetchError
from nxcloud_cdr.store_errors import StoreError


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


def test_only_what_the_store_did_not_confirm_is_reported_and_given_up_recordings_go_to_the_queue():
    """A failed download is recorded on the item (and retried by the sweep): the stream
    moves on. An outcome DynamoDB did not confirm is tried again by the stream."""
    retryable = ItemOutcome(failures=[FetchError("http", "HTTP 404", retryable=True)])
    final_entry = {"status": "failed", "reason": "refused", "retryable": False}
    refused = ItemOutcome(
        failures=[FetchError("refused", "off the list", retryable=False)], final=[("call", final_entry)]
    )
    archiver = Archiver(
        {"ID#late": retryable, "ID#evil": refused, "ID#down": StoreError("throttled"), "ID#bug": KeyError("x")}
    )
    given_up: list[dict[str, Any]] = []
    counted: list[tuple[str, float]] = []
    fake: Any = archiver
    answer = handle_stream(
        {"Records": [record("ok", 1), record("late", 2), record("evil", 3), record("down", 40), record("bug", 7)]},
        fake,
        lambda: 300.0,
        lambda name, value=1: counted.append((name, value)),
        given_up.append,
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "7"}, {"itemIdentifier": "40"}]}
    assert given_up == [{"pk": "ID#evil", "sk": "pns_call_result", "recording": "call", **final_entry}]
    assert sorted(name for name, _ in counted if name.startswith("RecordingF") or name.endswith("Errors")) == [
        "RecordingFailures",
        "RecordingFailures",
        "RecordingFailuresFinal",
        "RecordingStoreErrors",
        "RecordingStoreErrors",
    ]


def test_records_without_keys_are_skipped():
    archiver = Archiver({})
    assert run(archiver, [{"dynamodb": {"SequenceNumber": "1"}}, {}])[0] == {"batchItemFailures": []}
    assert archiver.calls == []


def test_an_object_overwritten_by_another_link_is_never_recorded_as_the_first():
    """Copies that swap the legs' links while one archive() reads the item again: what
    it records for each name is what that name's object holds at the end."""
    import hashlib
    import json

    from nxcloud_cdr.recordings.archiver import RecordingArchiver, object_key
    from nxcloud_cdr.recordings.fetch import FetchPolicy

    first, second = "https://r.nxcloud.com/A.mp3", "https://r.nxcloud.com/B.mp3"

    def item(order: list[str], revision: int) -> dict[str, Any]:
        raw = json.dumps({"callId": "c1", "legList": [{"callRecordFile": link} for link in order]})
        return {
            "pk": "ID#c1",
            "sk": "pns_call_result",
            "raw": raw,
            "revision": revision,
            "recordingState": "pending",
            "callStartUtc": "2024-05-01T00:00:00Z",
        }

    versions = iter([item([first, second], 1), item([second, first], 2), item([first, second], 3)])
    bucket: dict[str, bytes] = {}
    recorded: list[dict[str, Any]] = []

    class Stubbed(RecordingArchiver):
        def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
            return next(versions)

        def _fetch(self, stored: dict[str, Any], name: str, link: str) -> dict[str, Any]:
            key = object_key(stored, name, "mp3")
            bucket[key] = link.encode()
            return {
                "link": link,
                "status": "archived",
                "s3Key": key,
                "sha256": hashlib.sha256(link.encode()).hexdigest(),
                "bytes": len(link),
            }

        def _record(self, stored: dict[str, Any], links: Any, archive: dict[str, Any], *, deferred: bool) -> bool:
            recorded.append(archive)
            return stored["revision"] == 3  # the item changed under the first two rounds

    Stubbed(None, "t", None, "b", FetchPolicy(), sleep=lambda _: None).archive({"pk": "ID#c1", "sk": "x"})
    for entry in recorded[-1].values():
        assert hashlib.sha256(bucket[entry["s3Key"]]).hexdigest() == entry["sha256"]
        assert bucket[entry["s3Key"]] == entry["link"].encode()
