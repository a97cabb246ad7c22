"""Recordings archived from the table's stream: a push, a callback or the sync writes a
record with a link; DynamoDB Local's stream (the template's filter, batch size and
retries, devtools/streams.py) hands it to the archiver function, which fetches from a
real HTTPS server on loopback and writes to S3 (moto's server)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nxcloud_cdr.recording_links import link_id
from nxcloud_cdr.recordings import handler as archiver_handler
from nxcloud_cdr.recordings.archiver import request_retry, sweep
from nxcloud_cdr.store import CallStore

from devtools.dynamodb_local import DynamoDBLocal
from devtools.recording_host import MP3_HEADER, RecordingHost
from devtools.s3_local import LocalS3
from devtools.streams import StreamPump
from tests.conftest import ARCHIVER_FUNCTION, body_of, event_with_body, load_event
from tests.functional.conftest import stream_pump
from tests.functional.test_permissions import check

ATTEMPTS = 2


@pytest.fixture(scope="session")
def local_s3() -> Iterator[LocalS3]:
    with LocalS3() as s3:
        yield s3


@pytest.fixture(scope="session")
def recording_host() -> Iterator[RecordingHost]:
    with RecordingHost() as host:
        yield host


@pytest.fixture
def bucket(ddb, push_env, local_s3: LocalS3, recording_host: RecordingHost, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bucket of this test's own, and the archiver's environment as `make local` sets it."""
    name = f"recordings-{uuid.uuid4().hex[:12]}"
    local_s3.client().create_bucket(Bucket=name)
    env = {
        "RECORDINGS_BUCKET": name,
        "AWS_ENDPOINT_URL_S3": local_s3.endpoint,
        "RECORDING_HOSTS": "localhost",
        "RECORDING_ALLOWED_NETWORKS": "127.0.0.0/8",
        "RECORDING_CA_FILE": recording_host.ca_file,
        "RECORDING_ATTEMPTS": str(ATTEMPTS),
        "RECORDING_BACKOFF_SECONDS": "0",
        "RECORDING_TIMEOUT_SECONDS": "2",
    }
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setattr(archiver_handler, "_archiver", None)
    monkeypatch.setattr(archiver_handler, "_settings", None)
    return name


@pytest.fixture
def pump(bucket: str, dynamodb_local: DynamoDBLocal, push_env, invoke) -> StreamPump:
    return stream_pump(ARCHIVER_FUNCTION, dynamodb_local, push_env["TABLE_NAME"], invoke)


def push_pns(invoke: Any, call_id: str, link: str | None, **extra: Any) -> dict[str, Any]:
    body = json.loads(load_event("pns-call-result.json")["body"])
    body.update(callId=call_id, recordFile=link, **extra)
    response = invoke("PnsCallResultFunction", event_with_body("pns-call-result.json", json.dumps(body)))
    assert response["statusCode"] == 200, response
    return body_of(response)


def pushed(invoke: Any, recording_host: RecordingHost, call_id: str) -> tuple[str, Any]:
    """A PNS call result pushed with a recording the stand-in serves, and the archiver
    the stream will hand it to (for a test to break one of its parts)."""
    link = recording_host.add(f"pns/{uuid.uuid4().hex}.mp3", body=MP3_HEADER + b"a")
    push_pns(invoke, call_id, link)
    return link, archiver_handler.archiver()


def item_of(store: CallStore, call_id: str, kind: str = "pns_call_result") -> dict[str, Any]:
    [item] = store.get(call_id, kind)
    return item


def s3_body(local_s3: LocalS3, bucket: str, key: str) -> bytes:
    data: bytes = local_s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def test_a_pushed_link_ends_archived_with_its_key_size_and_checksum_on_the_item(
    invoke, store, pump, recording_host, local_s3, bucket
):
    body = MP3_HEADER + b"call audio" * 1000
    link = recording_host.add(f"pns/{uuid.uuid4().hex}.mp3", body=body)
    push_pns(invoke, "rec-1", link)
    assert item_of(store, "rec-1")["recordingState"] == "pending"

    pump.drain()

    item = item_of(store, "rec-1")
    entry = item["recordings"]["call"]
    assert item["recordingState"] == "archived"
    assert "recordingFailed" not in item
    assert entry["s3Key"] == "recordings/2022/12/19/pns_call_result/rec-1.mp3"
    assert (entry["link"], entry["bytes"], entry["sha256"]) == (
        link_id(link),
        len(body),
        hashlib.sha256(body).hexdigest(),
    )
    assert s3_body(local_s3, bucket, entry["s3Key"]) == body


def test_a_link_archived_once_is_not_fetched_again(invoke, store, pump, recording_host):
    path = f"pns/{uuid.uuid4().hex}.mp3"
    link = recording_host.add(path, body=MP3_HEADER + b"x")
    push_pns(invoke, "rec-once", link)
    pump.drain()
    # NXCLOUD's retry (a duplicate), and a corrected copy with the same link (a merge).
    push_pns(invoke, "rec-once", link)
    push_pns(invoke, "rec-once", link, callerDisplay="someone new")
    pump.drain()

    assert recording_host.routes["/" + path].hits == 1
    assert item_of(store, "rec-once")["recordingState"] == "archived"


def test_a_changed_link_is_archived_again_and_the_item_shows_the_new_one(
    invoke, store, pump, recording_host, local_s3, bucket
):
    first = recording_host.add(f"pns/{uuid.uuid4().hex}.mp3", body=MP3_HEADER + b"first")
    push_pns(invoke, "rec-changed", first, duration=10)
    pump.drain()
    second = recording_host.add(f"pns/{uuid.uuid4().hex}.mp3", body=MP3_HEADER + b"second, longer")
    # A copy that knows more (its link differs): it ranks above and its link is shown.
    push_pns(invoke, "rec-changed", second, duration=10, endTime="2022-12-19 14:52:00", extra="more")
    pump.drain()

    item = item_of(store, "rec-changed")
    entry = item["recordings"]["call"]
    shown = json.loads(item["raw"])["recordFile"]
    assert entry["link"] == link_id(shown)
    assert item["recordingState"] == "archived"
    assert s3_body(local_s3, bucket, entry["s3Key"]) == MP3_HEADER + (b"first" if shown == first else b"second, longer")


def test_a_failing_link_is_retried_then_recorded_listed_and_retried_on_request(
    invoke, store, pump, recording_host, ddb, push_env, monkeypatch
):
    path = f"pns/{uuid.uuid4().hex}.mp3"
    link = recording_host.add(path, status=404, content_type="text/html", body=b"no such file")
    push_pns(invoke, "rec-404", link)

    pump.drain()

    item = item_of(store, "rec-404")
    entry = item["recordings"]["call"]
    assert (item["recordingState"], item["recordingFailed"]) == ("failed", "retrying")
    assert (entry["status"], entry["reason"], entry["retryable"]) == ("failed", "http", True)
    # Tried ATTEMPTS times, with backoff; recorded, so the stream moves on (nothing given up).
    assert recording_host.routes["/" + path].hits == ATTEMPTS == entry["attempts"]
    assert pump.given_up == []
    assert [found["nxcloudId"] for found in store.recording_failures().items] == ["rec-404"]

    # The hourly sweep hands it back at its first run 50 minutes or more after it failed.
    failed_at = datetime.fromisoformat(entry["failedAt"].replace("Z", "+00:00"))
    assert sweep(ddb, push_env["TABLE_NAME"], failed_at + timedelta(minutes=49)) == 0
    assert sweep(ddb, push_env["TABLE_NAME"], failed_at + timedelta(minutes=50)) == 1
    later = failed_at + timedelta(minutes=51)
    monkeypatch.setattr(archiver_handler.archiver(), "_clock", lambda: later)  # the archiver runs then too
    pump.drain()
    item = item_of(store, "rec-404")
    assert item["recordings"]["call"]["attempts"] == 2 * ATTEMPTS  # still 404: counted on
    assert item["recordings"]["call"]["firstFailedAt"] == entry["firstFailedAt"]

    # Retried on request (nxcdr recordings retry) once the file is there.
    recording_host.routes["/" + path] = type(recording_host.routes["/" + path])(body=MP3_HEADER + b"late")
    assert request_retry(ddb, push_env["TABLE_NAME"], item, now=later + timedelta(minutes=1))
    pump.drain()

    item = item_of(store, "rec-404")
    assert item["recordingState"] == "archived"
    assert "recordingFailed" not in item
    assert store.recording_failures().items == []


def test_a_recording_failing_for_a_day_is_given_up(invoke, store, pump, recording_host, monkeypatch):
    path = f"pns/{uuid.uuid4().hex}.mp3"
    link = recording_host.add(path, status=404, content_type="text/html", body=b"gone")
    push_pns(invoke, "rec-gone", link)
    archiver = archiver_handler.archiver()
    reported: list[dict[str, Any]] = []
    monkeypatch.setattr(archiver_handler, "give_up", reported.append)
    pump.drain()
    first = item_of(store, "rec-gone")["recordings"]["call"]
    assert first["retryable"] and reported == []

    # A day later it still fails: no more automatic retries, and it is reported.
    later = datetime.fromisoformat(first["firstFailedAt"].replace("Z", "+00:00")) + timedelta(hours=24)
    monkeypatch.setattr(archiver, "_clock", lambda: later)
    item = item_of(store, "rec-gone")
    assert request_retry(archiver.dynamodb, archiver.table_name, item)
    pump.drain()

    entry = item_of(store, "rec-gone")["recordings"]["call"]
    assert (entry["retryable"], entry["attempts"]) == (False, 2 * ATTEMPTS)
    assert [(message["pk"], message["recording"], message["reason"]) for message in reported] == [
        ("ID#rec-gone", "call", "http")
    ]


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        ("https://evil.example/a.mp3", "refused"),
        ("http://localhost/a.mp3", "refused"),
        ("https://127.0.0.1/a.mp3", "refused"),
        ("*********.mp3", "refused"),
    ],
)
def test_a_link_the_policy_refuses_is_recorded_and_never_fetched_or_retried(invoke, store, pump, link, reason):
    push_pns(invoke, f"rec-refused-{reason}", link)

    pump.drain()

    item = item_of(store, f"rec-refused-{reason}")
    entry = item["recordings"]["call"]
    assert (entry["reason"], entry["retryable"], entry["attempts"]) == (reason, False, 1)
    assert (item["recordingState"], item["recordingFailed"]) == ("failed", "failed")
    assert pump.given_up == []


def test_what_the_archiver_gave_up_on_waits_for_a_request_whatever_wakes_it(
    invoke, store, pump, recording_host, monkeypatch, ddb, push_env
):
    """A merge (a new copy) or the schedule makes the item pending again: a recording
    given up on is not tried, nor reported, again; a request (nxcdr recordings retry) is
    what tries it."""
    reported: list[dict[str, Any]] = []
    monkeypatch.setattr(archiver_handler, "give_up", reported.append)
    path = f"pns/{uuid.uuid4().hex}.mp3"
    link = recording_host.add(path, body=MP3_HEADER + b"x" * 5000)
    push_pns(invoke, "rec-final", link)
    archiver = archiver_handler.archiver()
    object.__setattr__(archiver.policy, "max_bytes", 1000)
    pump.drain()
    assert [message["reason"] for message in reported] == ["too_large"]

    for copy in range(3):
        push_pns(invoke, "rec-final", link, callerDisplay=f"copy {copy}")
        pump.drain()
    assert sweep(ddb, push_env["TABLE_NAME"], datetime.now(UTC) + timedelta(days=2)) == 0

    item = item_of(store, "rec-final")
    assert (item["recordings"]["call"]["attempts"], len(reported)) == (1, 1)
    assert (item["recordingState"], item["recordingFailed"]) == ("failed", "failed")
    assert recording_host.routes["/" + path].hits == 1

    object.__setattr__(archiver.policy, "max_bytes", 10_000_000)
    assert request_retry(ddb, push_env["TABLE_NAME"], item)
    pump.drain()
    item = item_of(store, "rec-final")
    assert item["recordingState"] == "archived" and "recordingRetry" not in item


def test_every_call_of_the_archiver_is_allowed_by_its_policy(invoke, store, pump, recording_host, ddb, push_env, calls):
    ok = recording_host.add(f"pns/{uuid.uuid4().hex}.mp3", body=MP3_HEADER + b"x")
    missing = recording_host.add(f"pns/{uuid.uuid4().hex}.mp3", status=404, body=b"")
    push_pns(invoke, "rec-iam-1", ok)
    push_pns(invoke, "rec-iam-2", missing)
    calls.clear()
    pump.drain()
    invoke(ARCHIVER_FUNCTION, {"source": "aws.scheduler", "detail": {}})  # the hourly schedule
    assert sweep(ddb, push_env["TABLE_NAME"], datetime.now(UTC) + timedelta(hours=2)) == 1

    made = check(ARCHIVER_FUNCTION, calls, push_env)
    assert {"GetItem", "UpdateItem", "Query"} <= made


def test_callback_recording_and_voicemail_each_archived_under_their_own_name(
    invoke, store, pump, recording_host, local_s3, bucket
):
    row = json.loads(load_event("cc-call-log.json")["body"])
    row["recordUrl"] = recording_host.add(f"cc/{uuid.uuid4().hex}.mp3", body=MP3_HEADER + b"call")
    row["leaveMsgUrl"] = recording_host.add(
        f"cc/{uuid.uuid4().hex}.wav", content_type="audio/wav", body=b"RIFF....WAVEfmt "
    )
    event = event_with_body("cc-call-log.json", json.dumps(row))
    assert invoke("CcCallLogFunction", event)["statusCode"] == 200

    pump.drain()

    recordings = item_of(store, row["callId"], "cc_cdr")["recordings"]
    assert recordings["call"]["s3Key"].endswith(f"/cc_cdr/{row['callId']}.mp3")
    assert recordings["voicemail"]["s3Key"].endswith(f"/cc_cdr/{row['callId']}-voicemail.wav")
    assert s3_body(local_s3, bucket, recordings["voicemail"]["s3Key"]) == b"RIFF....WAVEfmt "


def test_each_leg_of_a_2024_call_is_archived(invoke, store, pump, recording_host):
    event = load_event("pns-call-result-2024.json")
    body = json.loads(event["body"])
    for number, leg in enumerate(body["legList"]):
        leg["callRecordFile"] = recording_host.add(
            f"pns24/{uuid.uuid4().hex}-{number}.mp3", body=MP3_HEADER + bytes([number])
        )
    assert (
        invoke("PnsCallResultFunction", event_with_body("pns-call-result-2024.json", json.dumps(body)))["statusCode"]
        == 200
    )

    pump.drain()

    recordings = item_of(store, body["callId"])["recordings"]
    assert sorted(recordings) == [f"leg{number + 1}" for number in range(len(body["legList"]))]
    assert all(entry["status"] == "archived" for entry in recordings.values())


def test_legs_linking_one_object_by_different_queries_are_one_download(invoke, store, pump, recording_host):
    """Issue 19, item 6: one body, one object, links that differ in their query
    string: fetched once, archived once, and the item ends archived."""
    event = load_event("pns-call-result-2024.json")
    body = json.loads(event["body"])
    path = f"pns24/{uuid.uuid4().hex}.mp3"
    link = recording_host.add(path, body=MP3_HEADER + b"one")
    body["legList"] = [
        {**body["legList"][0], "uuid": str(uuid.uuid4()), "callRecordFile": f"{link}?x={number}"} for number in range(6)
    ]
    response = invoke("PnsCallResultFunction", event_with_body("pns-call-result-2024.json", json.dumps(body)))
    assert response["statusCode"] == 200

    pump.drain()

    item = item_of(store, body["callId"])
    assert recording_host.routes[f"/{path}"].hits == 1
    assert sorted(item["recordings"]) == ["leg1"]
    assert item["recordings"]["leg1"]["link"] == link_id(f"{link}?x=0")
    assert item["recordingState"] == "archived"


def test_the_archiver_never_undoes_a_newer_copy_written_while_it_downloads(
    invoke, store, pump, recording_host, monkeypatch
):
    link, archiver = pushed(invoke, recording_host, "rec-race")
    real = archiver._fetch

    def fetch_while_a_copy_arrives(*arguments: Any) -> dict[str, Any]:
        push_pns(invoke, "rec-race", link, callerDisplay="arrived meanwhile")
        return real(*arguments)

    monkeypatch.setattr(archiver, "_fetch", fetch_while_a_copy_arrives)
    pump.drain()

    item = item_of(store, "rec-race")
    assert item["recordingState"] == "archived"
    assert "arrived meanwhile" in json.dumps(json.loads(item["raw"]))
    assert len(store.versions("rec-race")) == 2


def test_s3_refusing_is_recorded_and_retried_later(invoke, store, pump, recording_host, monkeypatch):
    _link, archiver = pushed(invoke, recording_host, "rec-s3-down")
    monkeypatch.setattr(archiver, "bucket", "no-such-bucket")

    pump.drain()

    entry = item_of(store, "rec-s3-down")["recordings"]["call"]
    assert (entry["reason"], entry["retryable"]) == ("store", True)
    assert pump.given_up == []


def test_an_outcome_dynamodb_does_not_confirm_is_tried_again_by_the_stream(
    invoke, store, pump, recording_host, monkeypatch
):
    from botocore.exceptions import ClientError

    link, archiver = pushed(invoke, recording_host, "rec-ddb-down")
    real = archiver.dynamodb.update_item
    calls = {"n": 0}

    def throttled(**arguments: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:  # the first delivery and its first retry
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "UpdateItem"
            )
        return real(**arguments)

    monkeypatch.setattr(archiver.dynamodb, "update_item", throttled)
    pump.drain()

    item = item_of(store, "rec-ddb-down")
    assert item["recordingState"] == "archived"  # the third delivery recorded it
    assert recording_host.routes[link.split(str(recording_host.port), 1)[1]].hits == 3
    assert pump.given_up == []


def test_with_too_little_time_left_a_recording_waits_for_the_next_invocation(
    invoke, store, pump, recording_host, monkeypatch
):
    _link, archiver = pushed(invoke, recording_host, "rec-late")
    answers = iter([5.0])  # the first invocation is nearly out of time; the next is not

    def archive(key: dict[str, Any], time_left: Any = None) -> Any:
        return real(key, lambda: next(answers, 900.0))

    real = archiver.archive
    monkeypatch.setattr(archiver, "archive", archive)
    pump.drain()

    item = item_of(store, "rec-late")
    assert item["recordingState"] == "archived"
    assert "recordingFailed" not in item and pump.given_up == []


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    arrivals=st.lists(
        st.tuples(st.sampled_from(["a", "b", "none"]), st.integers(0, 3), st.booleans()), min_size=1, max_size=5
    )
)
def test_whatever_arrives_in_any_order_the_item_ends_with_its_shown_link_archived(
    arrivals: list[tuple[str, int, bool]], invoke, store, pump, recording_host, local_s3, bucket
):
    """Copies of one call with different links (or none), the archiver running between
    any of them or not: once the stream is drained, the link the item shows is
    archived, from that link, and nothing else is claimed."""
    call_id = f"rec-any-{uuid.uuid4().hex[:8]}"
    links = {
        name: recording_host.add(f"any/{call_id}-{name}.mp3", body=MP3_HEADER + name.encode()) for name in ("a", "b")
    }
    for name, duration, drain in arrivals:
        push_pns(invoke, call_id, links.get(name), duration=duration)
        if drain:
            pump.drain()
    pump.drain()

    item = item_of(store, call_id)
    shown = json.loads(item["raw"]).get("recordFile")
    if not shown:
        assert "recordings" not in item or item["recordingState"] == "archived"
        return
    entry = item["recordings"]["call"]
    assert (item["recordingState"], entry["link"], entry["status"]) == ("archived", link_id(shown), "archived")
    assert s3_body(local_s3, bucket, entry["s3Key"]) == MP3_HEADER + ("a" if shown == links["a"] else "b").encode()


def test_the_sample_stream_event_is_answered_without_failures(invoke, bucket):
    answer: Callable[..., Any] = invoke
    assert answer(ARCHIVER_FUNCTION, load_event("recording-archiver-stream.json")) == {"batchItemFailures": []}


def push_legs(invoke: Any, recording_host: RecordingHost, call_id: str, sizes: list[int]) -> list[str]:
    """A 2024 PNS call result with a leg per size, each leg's recording of that size."""
    body = json.loads(load_event("pns-call-result-2024.json")["body"])
    body["callId"] = call_id
    body["legList"] = [dict(body["legList"][0]) for _ in sizes]
    paths = []
    for leg, size in zip(body["legList"], sizes, strict=True):
        path = f"pns24/{uuid.uuid4().hex}.mp3"
        leg["callRecordFile"] = recording_host.add(path, body=MP3_HEADER + b"x" * size)
        paths.append("/" + path)
    event = event_with_body("pns-call-result-2024.json", json.dumps(body))
    assert invoke("PnsCallResultFunction", event)["statusCode"] == 200
    return paths


def test_a_retry_request_stands_until_every_link_was_tried_and_through_a_merge(
    invoke, store, pump, recording_host, monkeypatch, ddb, push_env
):
    """`nxcdr recordings retry` after a fix: the first invocation has the time for one
    leg only, and NXCLOUD's corrected copy is merged in between; both legs end archived."""
    monkeypatch.setattr(archiver_handler, "give_up", lambda message: None)
    paths = push_legs(invoke, recording_host, "rec-request", [5000, 5000])
    archiver = archiver_handler.archiver()
    object.__setattr__(archiver.policy, "max_bytes", 1000)
    pump.drain()
    assert item_of(store, "rec-request")["recordingFailed"] == "failed"  # too large: given up

    object.__setattr__(archiver.policy, "max_bytes", 10_000_000)
    assert request_retry(ddb, push_env["TABLE_NAME"], item_of(store, "rec-request"))
    body = json.loads(item_of(store, "rec-request")["raw"]) | {"ext": "a corrected copy"}
    assert (
        invoke("PnsCallResultFunction", event_with_body("pns-call-result-2024.json", json.dumps(body)))["statusCode"]
        == 200
    )
    assert "recordingRetry" in item_of(store, "rec-request")  # the merge kept the request
    answers = iter([900.0, 900.0, 5.0])  # time for the first leg, not the second
    real = archiver.archive
    monkeypatch.setattr(archiver, "archive", lambda key, time_left=None: real(key, lambda: next(answers, 900.0)))
    pump.drain()

    item = item_of(store, "rec-request")
    assert item["recordingState"] == "archived" and "recordingRetry" not in item
    assert [recording_host.routes[path].hits for path in paths] == [2, 2]


def test_a_routine_deferral_is_no_failure(invoke, store, pump, recording_host, monkeypatch):
    counted: list[str] = []
    monkeypatch.setattr(archiver_handler, "_count", lambda name, value=1: counted.append(name))
    _link, archiver = pushed(invoke, recording_host, "rec-deferred")
    answers = iter([5.0])
    real = archiver.archive
    monkeypatch.setattr(archiver, "archive", lambda key, time_left=None: real(key, lambda: next(answers, 900.0)))
    pump.drain()

    assert item_of(store, "rec-deferred")["recordingState"] == "archived"
    assert "RecordingsDeferred" in counted and "RecordingStoreErrors" not in counted


def test_failures_are_listed_once_each_whatever_the_page_size(invoke, store, pump, recording_host):
    for number in range(3):
        push_pns(invoke, f"rec-listed-final-{number}", f"https://evil.example/{number}.mp3")
    for number in range(2):
        missing = recording_host.add(f"pns/{uuid.uuid4().hex}.mp3", status=404, body=b"")
        push_pns(invoke, f"rec-listed-retrying-{number}", missing)
    pump.drain()
    for limit in range(1, 7):
        seen: list[str] = []
        cursor = None
        while True:
            page = store.recording_failures(limit=limit, cursor=cursor)
            seen += [item["nxcloudId"] for item in page.items]
            cursor = page.cursor
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == 5, (limit, seen)
        assert [name.split("-")[2] for name in seen] == ["final"] * 3 + ["retrying"] * 2
