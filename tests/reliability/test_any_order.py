"""Any permutation of any multiset of copies of a record (NXCLOUD's retries, its
corrections, push and sync copies, in order or concurrently) ends as the same item:
the field-by-field merge of the distinct copies shown, never less information than any
one of them, every distinct copy kept as a version once there are two, every source
listed. The stored record is a function of the *set* of copies, on the real engine."""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nxcloud_cdr import merge
from nxcloud_cdr.kinds import RECORD_KINDS
from nxcloud_cdr.payloads.cc_cdr import map_cc_cdr
from nxcloud_cdr.payloads.pns_call_result import map_pns_call_result
from nxcloud_cdr.records import CallRecord, content_hash
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
    },
)
cdr_changes = st.fixed_dictionaries(
    {},
    optional={
        "callDuration": st.integers(0, 4000),
        "recordUrl": st.sampled_from([None, "https://record.example/1.mp3"]),
        "answerTime": st.sampled_from([0, 1690442500000]),
        "endTime": st.sampled_from([1690442501000, 1690442509000]),
        "mos": st.sampled_from([4.2, 1e-200, None]),
        "callStatus": st.sampled_from(["Normal termination", "Missed call"]),
    },
)
BASES = {
    "pns_call_result": {"startAt": 1671440452, "caller": "85235757583", "callee": "85238533300", "did": "852"},
    "cc_cdr": {"startTime": 1690442492841, "caller": "85215236100", "callee": "85235757580", "direction": 0},
}


@st.composite
def copies_and_orders(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]], list[tuple[int, str, bool]], list[int]]:
    kind = draw(st.sampled_from(sorted(MAPPERS)))
    changes = pns_changes if kind == "pns_call_result" else cdr_changes
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


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(case=copies_and_orders())
def test_any_order_of_any_copies_ends_as_the_same_item(ddb, store, writer, case):
    kind, variants, arrivals, order = case
    results = []
    for how in ("as drawn", "permuted", "permuted, concurrently", "permuted, in pages"):
        call_id = f"order-{uuid.uuid4().hex}"
        copies = [(record_of(kind, call_id, variants[index], reformat), source) for index, source, reformat in arrivals]
        if how != "as drawn":
            copies = [copies[position] for position in order]
        if how.endswith("in pages"):
            write_pages(writer, copies)
        else:
            write_all(writer, copies, concurrently=how.endswith("concurrently"))

        main, versions = final_state(store, kind, call_id)
        distinct = {record.content_hash: record for record, _ in copies}
        ranked = sorted(distinct.values(), key=lambda record: record.rank, reverse=True)
        expected = merge.merged([json.loads(record.raw) for record in ranked], RECORD_KINDS[kind].zero_is_unset)
        shown = json.loads(main["raw"])
        # The merge of the set is shown, with its normalised fields...
        assert main["contentHash"] == content_hash(expected) and shown == expected, how
        assert main.get("durationSec") == mapped(kind, expected).duration_sec
        # ...never less information than any single copy, field by field...
        for record in distinct.values():
            assert merge.fullness(shown) >= merge.fullness(json.loads(record.raw)), how
            for name, value in json.loads(record.raw).items():
                assert merge.fullness(shown[name]) >= merge.fullness(value), (how, name)
        # ...every distinct copy retrievable, once (the item is the copy when there is one)...
        if len(distinct) > 1:
            assert set(versions) == set(distinct) and sorted(main["copies"]) == sorted(distinct), how
            for hash_, raw in versions.items():
                assert json.loads(raw) == json.loads(distinct[hash_].raw)
        else:
            assert versions == {} and "copies" not in main, how
        # ...and every source that sent one listed.
        sources = {source for _, source in copies} if not how.endswith("in pages") else {"sync"}
        assert set(main.get("sources") or [main["source"]]) == sources, how
        assert str(main.get("lastSeenAt") or main["receivedAt"]) >= str(main["receivedAt"])
        # Each order writes under its own call id, which is in every copy and so in the
        # content hashes that break rank ties: the item equals the merge of its set
        # (above); across orders, its fullness and the copies kept must agree.
        results.append(
            (merge.fullness(shown), sorted(record.completeness for record in distinct.values()), len(versions))
        )
    assert results[0] == results[1] == results[2] == results[3]
    SHAPES[f"{len(distinct)} distinct of {len(arrivals)}"] += 1


def mapped(kind: str, payload: dict[str, Any]) -> CallRecord:
    mapper, _ = MAPPERS[kind]
    return mapper(payload, json.dumps(payload), ZONE)


def test_orders_covered_many_shapes(figures):
    assert sum(SHAPES.values()) >= EXAMPLES
    assert any(shape.startswith(("3 distinct", "4 distinct")) for shape in SHAPES), SHAPES
    figures("examples (each written in 3 orders, one concurrent)", sum(SHAPES.values()))
    figures("distinct copies / arrivals", dict(sorted(SHAPES.items())))
