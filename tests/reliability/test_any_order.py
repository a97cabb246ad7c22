"""Any permutation of any multiset of copies of a record (NXCLOUD's retries, its
corrections, push and sync copies, both PNS formats, legs, values the model cannot
read, copies large enough to pass the join's budget; in order or concurrently) ends as
the same item: the join of the distinct copies (:mod:`nxcloud_cdr.merge`), which never
yields less than any one of them for any normalised field, every distinct copy kept as
a version once there are two, every source listed, and bounded. The stored record is a
function of the *set* of copies, on the real engine."""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nxcloud_cdr import merge
from nxcloud_cdr.kinds import RECORD_KINDS, normalised
from nxcloud_cdr.payloads.cc_cdr import map_cc_cdr
from nxcloud_cdr.payloads.pns_call_result import map_pns_call_result
from nxcloud_cdr.records import CallRecord
from nxcloud_cdr.store import CallStore
from nxcloud_cdr.times import parse_zone
from nxcloud_cdr.write_rule import RecordWriter

EXAMPLES = int(os.environ.get("NXCDR_HYPOTHESIS_ORDER_EXAMPLES", "150"))
ZONE = parse_zone("+08:00")
RECEIVED = datetime(2024, 5, 1, tzinfo=UTC)
MAPPERS = {"pns_call_result": (map_pns_call_result, "callId"), "cc_cdr": (map_cc_cdr, "callId")}

# What a corrected copy may change: NXCLOUD's own fields, with "not set" values too.
pns_changes = st.fixed_dictionaries(
    {},
    optional={
        "duration": st.integers(0, 4000),
        "recordFile": st.sampled_from(["", "https://remote.record.nxcloud.com/pns/a.mp3", "https://r/b.mp3"]),
        "answerAt": st.sampled_from([0, 1671440454, 1671440455]),
        "hangupAt": st.sampled_from([0, 1671440460, 1671440470]),
        "callStatus": st.sampled_from([0, 1, 2, "1"]),
        "lineIp": st.sampled_from(["10.0.0.8", ""]),
        "hangupCause": st.sampled_from(["", "NORMAL_CLEARING"]),
        # Values the model cannot read, and a copy near the body limit.
        "startAt": st.sampled_from([1671440452, "2022-12-19 17:00:52", "1e400"]),
        "big": st.sampled_from(["x" * 30_000, "y" * 60_000]),
    },
)
LEG: dict[str, Any] = {"caller": "85235757583", "callee": "85238533300"}
_TOP_2024: dict[str, Any] = {"didX": "852", "pnsType": "axb"}
# The 2024 format of the same call: legs by uuid, some with a recording link.
pns_2024_changes = st.fixed_dictionaries(
    {},
    optional={
        "legList": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "callStartAt": st.sampled_from([0, 1671440452]),
                    "callAnswerAt": st.sampled_from([0, 1671440454, "soon"]),
                    "callFinishAt": st.sampled_from([1671440460, 1671440470]),
                    "duration": st.integers(0, 4000),
                    "callRecordFile": st.sampled_from(["", "https://r/leg-a.mp3", "https://r/leg-b.mp3"]),
                },
            ).map(lambda leg: LEG | leg),
            max_size=3,
        ).map(lambda legs: [leg | {"uuid": f"leg-{number}"} for number, leg in enumerate(legs)]),
        "callStatus": st.sampled_from(["1", "2", ""]),
    },
).map(lambda change: _TOP_2024 | change)
cdr_changes = st.fixed_dictionaries(
    {},
    optional={
        "callDuration": st.integers(0, 4000),
        "recordUrl": st.sampled_from([None, "https://record.example/1.mp3"]),
        "answerTime": st.sampled_from([0, 1690442500000]),
        "endTime": st.sampled_from([1690442501000, 1690442509000]),
        "mos": st.sampled_from([4.2, 1e-200, None]),
        "callStatus": st.sampled_from(["Normal termination", "Missed call"]),
        "startTime": st.sampled_from([1690442492841, "2023-07-27 15:21:32"]),
    },
)
BASES = {
    "pns_call_result": {"startAt": 1671440452, "caller": "85235757583", "callee": "85238533300", "did": "852"},
    "cc_cdr": {"startTime": 1690442492841, "caller": "85215236100", "callee": "85235757580", "direction": 0},
}


@st.composite
def copies_and_orders(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]], list[tuple[int, str, bool]], list[int]]:
    kind = draw(st.sampled_from(sorted(MAPPERS)))
    changes = st.one_of(pns_changes, pns_2024_changes) if kind == "pns_call_result" else cdr_changes
    variants: list[dict[str, Any]] = draw(st.lists(changes, min_size=1, max_size=4))
    # Each arrival: which variant, from which source, and whether its JSON text differs
    # (key order, white space) though its content does not.
    arrivals = draw(
        st.lists(
            st.tuples(st.integers(0, len(variants) - 1), st.sampled_from(["push", "sync", "replay"]), st.booleans()),
            min_size=1,
            max_size=8,
        )
    )
    order = draw(st.permutations(range(len(arrivals))))
    return kind, variants, arrivals, list(order)


def record_of(kind: str, call_id: str, change: dict[str, Any], reformat: bool) -> CallRecord:
    mapper, id_name = MAPPERS[kind]
    payload = {id_name: call_id, **BASES[kind], **change}
    raw = json.dumps(dict(reversed(payload.items())), indent=2) if reformat else json.dumps(payload)
    return mapper(json.loads(raw), raw, ZONE)


def yielded(item: dict[str, Any]) -> dict[str, Any]:
    """What an item yields of the call by meaning: its lookups and call summary."""
    fields, _ = normalised(item, ZONE)
    values = {name: value for name, value in fields.get("callSummary", {}).items() if value not in (None, "unknown")}
    values |= {name: item[name] for name in LOOKUPS if name in item}
    return values


LOOKUPS = ("callerNumber", "calleeNumber", "didNumber", "didYNumber", "bindId", "customerBindId")


def final_state(store: CallStore, kind: str, call_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    [main] = store.get(call_id, kind)
    versions = {item["contentHash"]: item["raw"] for item in store.versions(call_id, kind)}
    return main, versions


SHAPES: Counter[str] = Counter()


def write_all(writer: RecordWriter, records: list[tuple[CallRecord, str]], *, concurrently: bool) -> None:
    def one(numbered: tuple[int, tuple[CallRecord, str]]) -> None:
        number, (record, source) = numbered
        # Arrival times in arrival order: a rule that preferred the later arrival would show.
        writer.write(record, RECEIVED + timedelta(seconds=number), source=source)

    if concurrently:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(one, enumerate(records)))
    else:
        for numbered in enumerate(records):
            one(numbered)


def write_pages(writer: RecordWriter, records: list[tuple[CallRecord, str]]) -> None:
    """As the sync writes: pages of up to three copies, each page at once (a page may
    hold two copies of one record)."""
    for number, start in enumerate(range(0, len(records), 3)):
        page = [record for record, _ in records[start : start + 3]]
        outcome = writer.write_many(page, RECEIVED + timedelta(seconds=number), source="sync")
        assert outcome.refused == []


def write_pages_among_new_calls(writer: RecordWriter, records: list[tuple[CallRecord, str]]) -> None:
    """As the sync writes a backfill: each copy in a page of its own beside 24 calls no
    one sent before, so that it is written in a transaction while the call is new, two
    pages at once (each other's transaction may find the call stored since its read)."""
    kind = records[0][0].kind

    def page(numbered: tuple[int, tuple[CallRecord, str]]) -> None:
        number, (record, _) = numbered
        others = [record_of(kind, f"other-{uuid.uuid4().hex}", {}, reformat=False) for _ in range(24)]
        outcome = writer.write_many([record, *others], RECEIVED + timedelta(seconds=number), source="sync")
        assert outcome.refused == []

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(page, enumerate(records)))


@pytest.fixture
def budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A join budget that two large copies pass (each copy stays under the 64 KiB body
    limit; DynamoDB's item limit would take seven): what is left out is exercised."""
    monkeypatch.setattr(merge, "LEAF_BUDGET", 100_000)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(case=copies_and_orders())
def test_any_order_of_any_copies_ends_as_the_same_item(ddb, store, writer, case, budget):
    kind, variants, arrivals, order = case
    results = []
    for how in ("as drawn", "permuted", "permuted, concurrently", "permuted, in pages", "among new calls, in pages"):
        call_id = f"order-{uuid.uuid4().hex}"
        copies = [(record_of(kind, call_id, variants[index], reformat), source) for index, source, reformat in arrivals]
        if how != "as drawn":
            copies = [copies[position] for position in order]
        if how.startswith("among new calls"):
            write_pages_among_new_calls(writer, copies)
        elif how.endswith("in pages"):
            write_pages(writer, copies)
        else:
            write_all(writer, copies, concurrently=how.endswith("concurrently"))

        main, versions = final_state(store, kind, call_id)
        distinct = {record.content_hash: record for record, _ in copies}
        # The join of the set is shown...
        expected = merge.join(
            merge.copy_of(
                record,
                json.loads(record.raw),
                source="push",
                received_at="",
                zero_is_unset=RECORD_KINDS[kind].zero_is_unset,
            )
            for record in distinct.values()
        )
        expected.trim()
        if len(distinct) > 1:
            assert json.loads(main["raw"]) == json.loads(json.dumps(expected.body())), how
        # ...never yielding less than any single copy, for any normalised field...
        shown = yielded(main)
        for record in distinct.values():
            for name, value in merge.copy_of(
                record, json.loads(record.raw), source="", received_at="", zero_is_unset=frozenset()
            ).summary.items():
                if name in merge.SUMMARY_FIELDS and name not in ("outcome", "hangupBy"):
                    assert name in shown, (how, name, value)
            if record.outcome == "answered":
                assert main["statusName"] == "answered", how
            for _, link in record.recordings:
                assert link in [found for _, found in main.get("recordingLinks") or []] or link in main["raw"], how
        # ...every distinct copy retrievable, once (the item is the copy when there is one)...
        if len(distinct) > 1:
            assert set(versions) == set(distinct) and "copies" not in main, how
            for hash_, raw in versions.items():
                assert json.loads(raw) == json.loads(distinct[hash_].raw)
        else:
            assert versions == {} and "callSummary" not in main, how
        # ...and every source that sent one listed.
        sources = {source for _, source in copies} if not how.endswith("in pages") else {"sync"}
        assert set(main.get("sources") or [main["source"]]) == sources, how
        assert str(main.get("lastSeenAt") or main["receivedAt"]) >= str(main["receivedAt"])
        # Each order writes under its own call id, which is in every copy and so in the
        # content hashes that break rank ties: the item equals the join of its set
        # (above); across orders, what it yields and the copies kept must agree.
        results.append((sorted(shown), sorted(record.completeness for record in distinct.values()), len(versions)))
    assert results[0] == results[1] == results[2] == results[3] == results[4]
    SHAPES[f"{len(distinct)} distinct of {len(arrivals)}"] += 1


def test_orders_covered_many_shapes(figures):
    assert sum(SHAPES.values()) >= EXAMPLES
    assert any(shape.startswith(("3 distinct", "4 distinct")) for shape in SHAPES), SHAPES
    figures("examples (each written in 3 orders, one concurrent)", sum(SHAPES.values()))
    figures("distinct copies / arrivals", dict(sorted(SHAPES.items())))
