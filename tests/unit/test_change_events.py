"""Every change a stream record can make gives an event whose detail validates against
schemas/call-change-event-v1.json, with an idempotency key shared by redeliveries and
never by different changes, and changedFields exactly the columns that differ. Items
built by the real item format (``build_item``) from copies of any shape (hypothesis)."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nxcloud_cdr import change_events
from nxcloud_cdr.change_events import COLUMNS, NumberPolicy, call_of, change_of, replay_of
from nxcloud_cdr.dynamodb_types import serialise
from nxcloud_cdr.items import build_item
from nxcloud_cdr.recording_links import ARCHIVE, ARCHIVED, STATE

from devtools.streams import lambda_json
from tests.conftest import repo_path
from tests.reliability.test_any_order import ZONE, cdr_changes, pns_2024_changes, pns_changes, record_of

SCHEMA = json.loads(repo_path("schemas", "call-change-event-v1.json").read_text(encoding="utf-8"))
FULL = NumberPolicy()
SALT = b"a salt of the stack, 32 bytes.."
HASHED = NumberPolicy("hashed", SALT)
EMITTED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TTL = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def detail_problems(detail: dict[str, Any]) -> list[str]:
    """What the schema finds wrong with an event's detail (formats checked too)."""
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    assert {"date-time", "uuid"} <= set(checker.checkers)  # else formats would pass unchecked
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=checker)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(detail)]


def test_the_schema_is_valid_and_its_call_is_exactly_the_columns():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    call = SCHEMA["properties"]["call"]
    assert list(call["properties"]) == list(COLUMNS)
    assert call["required"] == list(COLUMNS) and call["additionalProperties"] is False
    for name, kind in COLUMNS.items():
        prop = call["properties"][name]
        assert len(prop["description"]) > 20, name
        expected = {
            "string": {"string", "null"},
            "timestamp": {"string", "null"},
            "bigint": {"integer", "null"},
            "array<string>": {"array"},
        }[kind]
        types = set(prop["type"]) if isinstance(prop["type"], list) else {prop["type"]}
        # The key and the ordering key are never null.
        assert types == expected or (name in ("call_id", "kind", "record_version") and types < expected), name
        assert (prop.get("format") == "date-time") == (kind == "timestamp"), name
    for detail_type in change_events.DETAIL_TYPES:
        assert detail_type in SCHEMA["description"]
    assert "must accept" in SCHEMA["description"]
    metadata = SCHEMA["properties"]["metadata"]["properties"]
    cut = replace(replay_of(pns_item(), ZONE, FULL), truncated=("hangup_cause",))
    assert set(metadata) == set(cut.detail("x", EMITTED)["metadata"])
    # What may be cut is what the schema lists, and never the key, times or numbers.
    assert metadata["truncatedFields"]["items"]["enum"] == list(change_events._CUTTABLE)


# -- items of any shape ------------------------------------------------------------------

copies = st.one_of(
    st.tuples(st.just("pns_call_result"), st.one_of(pns_changes, pns_2024_changes)),
    st.tuples(st.just("cc_cdr"), cdr_changes),
)
archives = st.dictionaries(
    st.sampled_from(["call", "voicemail", "leg1"]),
    st.fixed_dictionaries(
        {"status": st.sampled_from([ARCHIVED, "failed", "retrying"])},
        optional={"s3Key": st.sampled_from(["recordings/a.mp3", "recordings/b.mp3"])},
    ),
    max_size=3,
)


@st.composite
def items(draw: st.DrawFn, call_id: str | None = None) -> dict[str, Any]:
    kind, change = draw(copies)
    record = record_of(kind, call_id or f"call-{draw(st.integers(0, 3))}", change, draw(st.booleans()))
    received = datetime(2024, 5, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 86_400)))
    item = build_item(record, received, source=draw(st.sampled_from(["push", "sync"])), retention_days=0)
    item["revision"] = draw(st.integers(0, 20))
    item["createdAt"] = item["receivedAt"]
    if draw(st.booleans()):
        item["lastSeenAt"] = (received + timedelta(minutes=5)).isoformat()
        item["sources"] = sorted({"push", "sync"})
    archive = draw(archives)
    if archive:
        item[ARCHIVE] = archive
        item[STATE] = ARCHIVED if any(entry["status"] == ARCHIVED for entry in archive.values()) else "failed"
    return item


def stream_record(name: str, old: dict[str, Any] | None, new: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    shown = new or old or {}
    stream: dict[str, Any] = {
        "Keys": serialise({"pk": shown["pk"], "sk": shown["sk"]}),
        "SequenceNumber": str(uuid.uuid4().int)[:21],
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        stream["OldImage"] = serialise(old)
    if new is not None:
        stream["NewImage"] = serialise(new)
    return {"eventID": uuid.uuid4().hex, "eventName": name, "eventSource": "aws:dynamodb", "dynamodb": stream, **extra}


def as_lambda_gives_it(record: dict[str, Any]) -> dict[str, Any]:
    """The record as a Lambda event holds it (JSON: binary values in base64)."""
    decoded: dict[str, Any] = json.loads(json.dumps(record, default=lambda_json))
    return decoded


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]))
    new = draw(items(call_id="one"))
    old = draw(items(call_id="one")) if name != "INSERT" else None
    if name == "REMOVE":
        return stream_record(name, old, None, **({"userIdentity": TTL} if draw(st.booleans()) else {}))
    return stream_record(name, old, new)


def visible_difference(old: dict[str, Any], new: dict[str, Any], numbers: NumberPolicy = FULL) -> list[str]:
    before, after = call_of(old, ZONE, numbers), call_of(new, ZONE, numbers)
    return [name for name in COLUMNS if name != "record_version" and before[name] != after[name]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records(), st.sampled_from([FULL, HASHED, NumberPolicy("none")]))
def test_every_change_gives_an_event_the_schema_accepts_or_none(record, numbers):
    change = change_of(as_lambda_gives_it(record), ZONE, numbers)
    if change is None:
        # Only a change that shows nothing new makes no event.
        assert record["eventName"] == "MODIFY"
        from nxcloud_cdr.dynamodb_types import deserialise

        stream = record["dynamodb"]
        assert visible_difference(deserialise(stream["OldImage"]), deserialise(stream["NewImage"]), numbers) == []
        return
    detail = change.detail(str(uuid.uuid4()), EMITTED)
    assert detail_problems(detail) == []
    assert change.detail_type in change_events.DETAIL_TYPES
    # A redelivery of the same record: the same change, the same key.
    again = change_of(record, ZONE, numbers)
    assert again is not None and again.idempotency_key == change.idempotency_key
    row = change.lake_row(detail["metadata"]["eventId"], EMITTED)
    assert list(row)[: len(change_events.EVENT_COLUMNS)] == list(change_events.EVENT_COLUMNS)
    assert set(row) == set(change_events.EVENT_COLUMNS) | set(COLUMNS) | {"dt"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items(call_id="one"), items(call_id="one"))
def test_changed_fields_are_exactly_the_columns_that_differ(old, new):
    change = change_of(stream_record("MODIFY", old, new), ZONE, FULL)
    differ = visible_difference(old, new)
    if not differ:
        assert change is None
        return
    assert change is not None
    assert list(change.changed_fields) == differ
    landed = set(call_of(new, ZONE, FULL)["recording_keys"]) - set(call_of(old, ZONE, FULL)["recording_keys"])
    assert change.detail_type == (change_events.RECORDING_ARCHIVED if landed else change_events.UPDATED)


@settings(max_examples=100, deadline=None)
@given(items(call_id="one"), st.integers(0, 1000), st.integers(1, 1000), st.integers(1, 10**9))
def test_distinct_changes_never_share_an_idempotency_key(item, revision, later, gap_ms):
    at = dict(item, revision=revision)
    moved = dict(item, revision=revision + later)
    # The same call stored again after its expiry: a new generation, revisions from 0.
    created = datetime.fromisoformat(item["createdAt"].replace("Z", "+00:00"))
    again = (created + timedelta(milliseconds=gap_ms)).isoformat()
    reborn = dict(item, revision=0, createdAt=again, receivedAt=again)
    keys = [
        replay_of(at, ZONE, FULL).idempotency_key,
        replay_of(moved, ZONE, FULL).idempotency_key,
        change_of(stream_record("REMOVE", at, None, userIdentity=TTL), ZONE, FULL).idempotency_key,  # type: ignore[union-attr]
        replay_of(reborn, ZONE, FULL).idempotency_key,
    ]
    assert len(set(keys)) == len(keys)
    # Versions count generations in seconds (exact as doubles): a call stored again a
    # second or more after it was first stored orders after its last version.
    if gap_ms >= 1000:
        assert call_of(reborn, ZONE, FULL)["record_version"] > call_of(at, ZONE, FULL)["record_version"]


def test_a_replay_shares_the_key_of_the_event_its_version_made():
    item = pns_item()
    live = change_of(stream_record("INSERT", None, dict(item, revision=0)), ZONE, FULL)
    assert live is not None
    replayed = replay_of(dict(item, revision=0), ZONE, FULL)
    assert (replayed.idempotency_key, replayed.detail_type, replayed.replayed) == (
        live.idempotency_key,
        change_events.CREATED,
        True,
    )
    assert detail_problems(replayed.detail(str(uuid.uuid4()), EMITTED)) == []


def pns_item(**extra: Any) -> dict[str, Any]:
    record = record_of("pns_call_result", "pns-1", {"recordFile": "https://remote.record.nxcloud.com/pns/a.mp3"}, False)
    item = build_item(record, datetime(2024, 5, 1, tzinfo=UTC), source="push", retention_days=0)
    return item | {"revision": 0, "createdAt": item["receivedAt"]} | extra


def test_a_write_that_shows_nothing_new_is_no_event():
    old = pns_item()
    # Another copy noted (revision, rank), nothing the call's columns show.
    assert change_of(stream_record("MODIFY", old, old | {"revision": 1, "rank": "x"}), ZONE, FULL) is None


def test_the_archivers_update_that_lands_a_recording_is_recording_archived():
    pending = pns_item()
    assert pending[STATE] == "pending"
    archived = pending | {
        "revision": 1,
        STATE: ARCHIVED,
        ARCHIVE: {"call": {"status": ARCHIVED, "s3Key": "recordings/2022/12/19/pns_call_result/pns-1.mp3"}},
    }

    change = change_of(stream_record("MODIFY", pending, archived), ZONE, FULL)

    assert change is not None and change.detail_type == change_events.RECORDING_ARCHIVED
    assert set(change.changed_fields) == {"recording_state", "recording_key", "recording_keys"}
    assert change.call["recording_key"] == "recordings/2022/12/19/pns_call_result/pns-1.mp3"
    # The archiver's failure is an update, not an archived recording.
    failed = pending | {"revision": 1, STATE: "failed", ARCHIVE: {"call": {"status": "failed"}}}
    assert change_of(stream_record("MODIFY", pending, failed), ZONE, FULL).detail_type == change_events.UPDATED  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("identity", "detail_type"),
    [
        (TTL, change_events.EXPIRED),
        ({"type": "Service", "principalId": "someone.amazonaws.com"}, change_events.DELETED),
        (None, change_events.DELETED),
    ],
)
def test_a_ttl_removal_is_expired_any_other_deleted(identity, detail_type):
    item = pns_item(revision=3)
    extra = {"userIdentity": identity} if identity else {}

    change = change_of(stream_record("REMOVE", item, None, **extra), ZONE, FULL)

    assert change is not None and change.detail_type == detail_type
    assert change.call == call_of(item, ZONE, FULL)  # what was removed
    assert change.changed_fields == ()
    assert detail_problems(change.detail(str(uuid.uuid4()), EMITTED)) == []


def test_versions_and_the_syncs_state_are_no_change():
    item = pns_item()
    version = item | {"sk": f"v#pns_call_result#{'0' * 16}"}
    state = {"pk": "SYNC#cc_cdr", "sk": "checkpoint", "at": "x"}
    for shown in (version, state):
        assert change_of(stream_record("INSERT", None, shown), ZONE, FULL) is None


def test_hashed_numbers_join_and_hide_the_number_none_hides_it():
    item = pns_item()
    full, hashed = call_of(item, ZONE, FULL), call_of(item, ZONE, HASHED)
    other = call_of(item, ZONE, NumberPolicy("hashed", b"another salt of 32 bytes......."))
    for column in change_events.NUMBER_COLUMNS:
        if full[column] is None:
            assert hashed[column] is None
            continue
        assert hashed[column] != full[column] and full[column] not in hashed[column]
        assert len(hashed[column]) == 64 and other[column] != hashed[column]
    assert full["caller_number"] and full["caller_number"] == full["caller_number"]
    # One number, one text: the same number in another item hashes the same.
    again = call_of(pns_item() | {"pk": "ID#pns-2"}, ZONE, HASHED)
    assert again["caller_number"] == hashed["caller_number"]
    assert all(call_of(item, ZONE, NumberPolicy("none"))[column] is None for column in change_events.NUMBER_COLUMNS)
    # The key does not depend on how numbers are shown: one change, one key.
    assert replay_of(item, ZONE, FULL).idempotency_key == replay_of(item, ZONE, HASHED).idempotency_key


def test_lake_times_are_the_events_milliseconds_exactly():
    # int() of a float's milliseconds made some times 1 ms early (0.6% of 1970-2033).
    call = dict.fromkeys(COLUMNS) | {"call_id": "1", "kind": "cc_cdr", "record_version": 0}
    change = change_events.Change(change_events.UPDATED, call | {"call_start_utc": "1974-04-15T22:55:39.577Z"}, ())
    row = change.lake_row("e", datetime(2026, 1, 1, 0, 0, 0, 577000, tzinfo=UTC))
    assert (row["call_start_utc"], row["emitted_at"]) == (135298539577, 1767225600577)


def test_record_versions_compare_exactly_as_doubles():
    # JavaScript and jq read JSON numbers as doubles: ms x 10^6 (1.8e18) made an update
    # equal to the create before it.
    item = {"pk": "ID#1", "sk": "cc_cdr", "receivedAt": "2254-12-31T23:59:59.999Z"}
    versions = [change_events.record_version(item | {"revision": revision}) for revision in (0, 1, 2)]
    assert all(version < 2**53 for version in versions)
    assert [float(version) for version in versions] == sorted({float(version) for version in versions})


def test_a_number_past_the_lakes_bigint_is_left_out_not_the_row():
    # A duration of 1e30 sent the row to Firehose's error output, and the call out of calls.
    assert change_events._int(10**30) is None and change_events._int("1e30") is None
    assert change_events._int(2**63 - 1) == 2**63 - 1 and change_events._int(-(2**63)) == -(2**63)


@pytest.mark.parametrize(
    ("start", "first_seen", "partition"),
    [
        ("2024-05-01T01:00:00.000Z", "2024-05-02T00:00:00.000Z", "2024-05-01"),
        ("2024-05-03T00:30:00.000Z", "2024-05-02T23:00:00.000Z", "2024-05-03"),  # a clock minutes ahead
        ("1975-01-26T00:00:00.000Z", "2024-05-02T00:00:00.000Z", "2024-05-02"),  # before the projection
        ("2100-01-01T00:00:00.000Z", "2024-05-02T00:00:00.000Z", "2024-05-02"),  # after it
        (None, "2024-05-02T00:00:00.000Z", "2024-05-02"),
    ],
)
def test_a_call_is_in_a_partition_athena_reads(start, first_seen, partition):
    call = dict.fromkeys(COLUMNS) | {"call_start_utc": start, "first_seen_at": first_seen}
    assert change_events.Change(change_events.UPDATED, call, ()).call_date == partition


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.dictionaries(
        st.sampled_from(["hangup_cause", "hangup_by", "direction", "bind_id", "outcome"]),
        st.text(alphabet=st.sampled_from(["a", "中", "\x01", "😀", '"']), max_size=4000),
    ),
    keys=st.lists(st.text(alphabet="abc/", min_size=1, max_size=60), max_size=40),
    limit=st.integers(min_value=2500, max_value=30_000),
)
def test_a_change_cut_to_fit_keeps_to_the_limit_and_cuts_only_what_it_names(texts, keys, limit):
    change = replay_of(pns_item(), ZONE, FULL)
    change = replace(change, call={**change.call, **texts, "recording_keys": keys})

    def size(candidate: change_events.Change) -> int:
        return len(json.dumps(candidate.detail("x", EMITTED)).encode())  # \u escapes: the costliest form

    cut = change_events.fitted(change, size, limit)

    assert cut is not None and size(cut) <= limit
    assert set(cut.truncated) <= set(change_events._CUTTABLE)
    assert cut.idempotency_key == change.idempotency_key
    for name, value in change.call.items():
        if name in cut.truncated:
            assert value[: len(cut.call[name])] == cut.call[name] and len(cut.call[name]) < len(value), name
        else:
            assert cut.call[name] == value, name
    assert (cut.truncated == ()) == (size(change) <= limit)


def test_a_removal_from_the_lake_reads_what_athena_and_duckdb_give_alike():
    call = replay_of(pns_item(), ZONE, FULL).call | {"recording_keys": ["a/b.mp3"], "sources": ["push", "sync"]}
    as_duckdb = {
        name: datetime.fromisoformat(value.replace("Z", "")) if name in change_events._TIMES and value else value
        for name, value in call.items()
    }
    as_athena = {
        name: (
            value.replace("T", " ").replace("Z", "")
            if name in change_events._TIMES and value
            else json.dumps(value)
            if isinstance(value, list)
            else None
            if value is None
            else str(value)
        )
        for name, value in call.items()
    }

    removals = [change_events.removal_from_lake(row) for row in (as_duckdb, as_athena)]

    for removal in removals:
        assert removal.detail_type == change_events.DELETED and removal.replayed
        assert removal.call == call
        assert detail_problems(removal.detail(str(uuid.uuid4()), EMITTED)) == []
    with pytest.raises(ValueError, match="key or version"):
        change_events.removal_from_lake({**call, "record_version": None})


# Each sample body's columns, pinned by hand from NXCLOUD's documents (not computed by
# the mapping under test): times from its epoch fields, numbers digits only.
PINNED = {
    "pns-call-result.json": (
        "pns_call_result",
        {
            "call_id": "1604763745256783872",
            "call_start_utc": "2022-12-19T09:00:52.000Z",  # startAt 1671440452
            "answer_utc": "2022-12-19T09:00:54.000Z",  # answerAt
            "call_end_utc": "2022-12-19T09:01:00.000Z",  # hangupAt
            "duration_sec": 6,
            "outcome": "answered",
            "caller_number": "85235757583",
            "callee_number": "85238533300",
            "did_number": "85235757584",
            "bind_id": "69f1d1be1a82204c6049b4a2797ed0af",
            "customer_bind_id": "1",
        },
    ),
    "cc-call-log.json": (
        "cc_cdr",
        {
            "call_id": "6605fcd9563616c6c009c6240",
            "call_start_utc": "2023-07-27T02:00:37.704Z",  # startTime 1690423237704
            "answer_utc": "2023-07-27T02:00:44.000Z",  # answerTime
            "call_end_utc": "2023-07-27T02:00:48.124Z",  # endTime
            "duration_sec": 5,
            "outcome": "answered",
            "direction": "inbound",  # 0: incoming
            "hangup_cause": "Agent hung up",
            "caller_number": "85238531117",
            "callee_number": "85235757568",
        },
    ),
}


@pytest.mark.parametrize("sample", sorted(PINNED))
def test_a_sample_calls_columns_are_what_nxcloud_sent(sample):
    from nxcloud_cdr.kinds import RECORD_KINDS

    kind, expected = PINNED[sample]
    raw = (repo_path("events") / "payloads" / sample).read_text(encoding="utf-8")
    record = RECORD_KINDS[kind].map(json.loads(raw), raw, ZONE)
    item = build_item(record, datetime(2024, 5, 1, tzinfo=UTC), source="push", retention_days=0)

    call = call_of(item | {"revision": 0, "createdAt": item["receivedAt"]}, ZONE, FULL)

    assert {name: call[name] for name in expected} == expected
    assert call["kind"] == kind and call["sources"] == ["push"]
    assert call["first_seen_at"] == "2024-05-01T00:00:00.000Z"
