"""The item never shows less than a copy (issue 18): each reproduction of the outside
test of the merge, on DynamoDB Local, in both orders of arrival."""

from __future__ import annotations

import json
import random
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nxcloud_cdr.kinds import RECORD_KINDS, normalised
from nxcloud_cdr.records import CallRecord
from nxcloud_cdr.store import CallStore
from nxcloud_cdr.times import parse_zone
from nxcloud_cdr.write_rule import RecordWriter

from devtools.template import create_tables
from tests.conftest import body_of, event_with_body, payload_text, table_names

ZONE = parse_zone("+08:00")
RECEIVED = datetime(2024, 5, 1, tzinfo=UTC)


def copy(kind: str, payload: dict[str, Any], *, text: str | None = None) -> CallRecord:
    raw = text if text is not None else json.dumps(payload, separators=(",", ":"))
    return RECORD_KINDS[kind].map(json.loads(raw), raw, ZONE)


def write_in_order(writer: RecordWriter, copies: list[CallRecord], *, source: str = "push") -> list[str]:
    return [
        writer.write(record, RECEIVED + timedelta(seconds=number), source=source).outcome
        for number, record in enumerate(copies)
    ]


def both_orders(writer: RecordWriter, store: CallStore, make: Any, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The item after the copies ``make(call_id)`` gives, written in their order and in
    the reverse order (each under its own id)."""
    shown = []
    for reverse in (False, True):
        call_id = f"join-{reverse}-{random.randrange(10**9)}"
        copies = make(call_id)
        write_in_order(writer, list(reversed(copies)) if reverse else copies)
        [item] = store.get(call_id, kind)
        shown.append(item)
    return shown[0], shown[1]


def flat(call_id: str, **changes: Any) -> dict[str, Any]:
    return json.loads(payload_text("pns-call-result.json")) | {"callId": call_id} | changes


def test_a_flat_copy_and_a_partial_2024_copy_keep_the_calls_time_and_outcome(writer, store):
    def make(call_id: str) -> list[CallRecord]:
        partial = {"callId": call_id, "didX": "85235757584", "pnsType": "axb", "legList": []}
        return [copy("pns_call_result", flat(call_id)), copy("pns_call_result", partial)]

    for item in both_orders(writer, store, make, "pns_call_result"):
        assert item["callStartUtc"] == "2022-12-19T09:00:52.000Z"
        assert item["sortKey"].startswith("2022-12-19T09:00:52.000Z#")
        assert item["timeBucket"] == "pns_call_result#2022-12"
        assert (item["durationSec"], item["statusName"]) == (6, "answered")
        fields, _ = normalised(item, ZONE)
        assert fields["callSummary"]["answerUtc"] == "2022-12-19T09:00:54.000Z"
        # The body shown is one format, read as such: the flat copy is the fuller one.
        assert "legList" not in json.loads(item["raw"]) and json.loads(item["raw"])["startAt"] == 1671440452


def test_legs_merge_by_identity_and_every_link_is_archived(writer, store):
    link = "https://remote.record.nxcloud.com/pns/20240501/leg.mp3"

    def leg(uuid: str, **values: Any) -> dict[str, Any]:
        return {"uuid": uuid, "caller": "85261234567", "callee": "85298765432", **values}

    def make(call_id: str) -> list[CallRecord]:
        base = {"callId": call_id, "callee": "85298765432", "didX": "85230001111", "pnsType": "axb"}
        one = base | {"legList": [leg("a", callRecordFile=link)]}
        two = base | {
            "legList": [
                leg("a", callStartAt=1714521600, callAnswerAt=1714521601, callFinishAt=1714521665, duration=64),
                leg("b", callStartAt=1714521601, callFinishAt=1714521665, hangupCause="NORMAL_CLEARING"),
            ]
        }
        return [copy("pns_call_result", one), copy("pns_call_result", two)]

    for item in both_orders(writer, store, make, "pns_call_result"):
        legs = json.loads(item["raw"])["legList"]
        assert [entry["uuid"] for entry in legs] == ["a", "b"]
        assert legs[0]["callRecordFile"] == link and legs[0]["duration"] == 64
        assert item["recordingState"] == "pending"
        assert [link] == [found for _, found in item["recordingLinks"]]


def test_legs_without_identity_merge_by_position(writer, store):
    link = "https://remote.record.nxcloud.com/pns/20240501/leg.mp3"

    def make(call_id: str) -> list[CallRecord]:
        base = {"callId": call_id, "didX": "85230001111"}
        one = base | {"legList": [{"callee": "85298765432", "callRecordFile": link}]}
        two = base | {"legList": [{"callee": "85298765432", "duration": 64, "callStartAt": 1714521600}, {"a": 1}]}
        return [copy("pns_call_result", one), copy("pns_call_result", two)]

    for item in both_orders(writer, store, make, "pns_call_result"):
        legs = json.loads(item["raw"])["legList"]
        assert legs[0] == {"callee": "85298765432", "callRecordFile": link, "duration": 64, "callStartAt": 1714521600}
        assert item["recordingState"] == "pending"


def test_a_readable_time_beats_a_fuller_copys_unreadable_one(writer, store):
    callback = json.loads(payload_text("cc-call-log.json"))

    def make(call_id: str) -> list[CallRecord]:
        fuller = callback | {"callId": call_id, "startTime": "2023-11-17 13:42:30", "orderId": "o-1", "taskId": "t"}
        return [copy("cc_cdr", fuller), copy("cc_cdr", callback | {"callId": call_id})]

    for item in both_orders(writer, store, make, "cc_cdr"):
        assert item["callStartUtc"] == "2023-07-27T02:00:37.704Z"
        assert item["timeBucket"] == "cc_cdr#2023-07"
        body = json.loads(item["raw"])
        assert body["startTime"] == 1690423237704 and body["orderId"] == "o-1"


def test_a_readable_duration_beats_a_better_ranked_copys_out_of_range_one(writer, store):
    def make(call_id: str) -> list[CallRecord]:
        higher = json.dumps(flat(call_id, extensionCaller="1")).replace('"duration": 6', '"duration": 1e400')
        return [copy("pns_call_result", {}, text=higher), copy("pns_call_result", flat(call_id))]

    for item in both_orders(writer, store, make, "pns_call_result"):
        assert item["durationSec"] == 6
        assert json.loads(item["raw"])["duration"] == 6


def big_copies(call_id: str) -> list[CallRecord]:
    """Ten distinct copies of one call, each about 60 KB (under the 64 KiB body limit),
    each with an unknown field of its own that does not compress."""
    randomness = random.Random(call_id)
    copies = []
    for number in range(10):
        noise = "".join(randomness.choices(string.ascii_letters + string.digits, k=60_000))
        copies.append(copy("pns_call_result", flat(call_id, **{f"extra{number}": noise})))
    return copies


@pytest.mark.parametrize("reverse", [False, True], ids=["0 to 9", "9 to 0"])
def test_copies_near_the_item_limit_are_all_kept_and_the_item_is_one_function_of_them(writer, store, reverse):
    call_id = "big-call"
    copies = big_copies(call_id)
    outcomes = write_in_order(writer, list(reversed(copies)) if reverse else copies)

    assert "stored" in outcomes and len(outcomes) == 10  # every copy answered, none refused
    [item] = store.get(call_id, "pns_call_result")
    assert len(store.versions(call_id)) == 10
    body = json.loads(item["raw"])
    kept = sorted(name for name in body if name.startswith("extra"))
    # What is left out is the lowest-ranked copies' own values, named in problems.
    ranked = sorted(copies, key=lambda record: record.rank, reverse=True)
    expected = sorted(next(name for name in json.loads(r.raw) if name.startswith("extra")) for r in ranked[: len(kept)])
    assert kept == expected and 0 < len(kept) < 10
    assert any("left out" in problem for problem in item["problems"])
    assert (item["callStartUtc"], item["durationSec"]) == ("2022-12-19T09:00:52.000Z", 6)


def test_copies_near_the_item_limit_end_as_one_item_in_any_order(ddb):
    copies = big_copies("any-order-big")
    shown = []
    for order in ([*range(10)], [*reversed(range(10))], [3, 7, 0, 9, 1, 8, 2, 6, 4, 5]):
        names = table_names()  # the same call, in a table of its own for each order
        create_tables(ddb, names)
        writer = RecordWriter(ddb, names["CallRecordsTable"])
        write_in_order(writer, [copies[index] for index in order])
        [item] = CallStore(ddb, names["CallRecordsTable"], names["QuarantineTable"]).get("any-order-big")
        shown.append({name: item[name] for name in ("raw", "rank", "problems", "sortKey", "durationSec")})
    assert shown[0] == shown[1] == shown[2]


def test_the_item_holds_no_list_of_its_copies(writer, store, ddb, push_env):
    call_id = "many-copies"
    write_in_order(writer, [copy("pns_call_result", flat(call_id, duration=seconds)) for seconds in range(1, 60)])
    raw_item = ddb.get_item(
        TableName=push_env["TABLE_NAME"], Key={"pk": {"S": f"ID#{call_id}"}, "sk": {"S": "pns_call_result"}}
    )["Item"]
    assert "copies" not in raw_item
    assert all(len(value.get("L", ())) < 10 for value in raw_item.values())
    assert len(store.versions(call_id)) == 59


def test_the_raw_shown_is_a_function_of_the_texts_received(writer, store):
    payload = flat("text-order")
    compact = json.dumps(payload, separators=(",", ":"))
    pretty = json.dumps(dict(reversed(payload.items())), indent=4)
    shown: list[str] = []
    for texts in ([compact, pretty], [pretty, compact]):
        call_id = f"text-{len(shown)}"
        copies = [copy("pns_call_result", {}, text=text.replace("text-order", call_id)) for text in texts]
        assert write_in_order(writer, copies) == ["stored", "duplicate"]
        [item] = store.get(call_id, "pns_call_result")
        shown.append(item["raw"].replace(call_id, "ID"))
    assert shown[0] == shown[1] == compact.replace("text-order", "ID")


def test_a_body_that_starts_with_a_byte_order_mark_is_stored(invoke, store):
    body = "\ufeff" + json.dumps(flat("bom-call"))
    response = invoke("PnsCallResultFunction", event_with_body("pns-call-result.json", body.encode("utf-8")))
    assert (response["statusCode"], body_of(response)["outcome"]) == (200, "stored")
    [item] = store.get("bom-call")
    assert item["raw"] == body.removeprefix("\ufeff")


def test_an_id_sent_as_a_number_is_the_text_of_its_value(invoke, store):
    """``1e2``, ``100.0`` and ``100`` are one id, ``"100"``; an id sent as text is kept
    as sent (``"100.0"`` is another record)."""
    template = json.dumps(flat("ID")).replace('"callId": "ID"', '"callId": SENT')
    outcomes = []
    for sent in ("1e2", "100", "100.0", "1.0E2"):
        response = invoke(
            "PnsCallResultFunction", event_with_body("pns-call-result.json", template.replace("SENT", sent))
        )
        outcomes.append((response["statusCode"], body_of(response)["id"]))
    assert outcomes == [(200, "100")] * 4
    [item] = store.get("100")
    # 1e2, 100.0 and 1.0E2 are one number (one copy), 100 another text of it: two copies.
    assert len(store.versions("100")) == 2
    assert json.loads(item["raw"])["callId"] in (100, 100.0)
    response = invoke(
        "PnsCallResultFunction", event_with_body("pns-call-result.json", template.replace("SENT", '"100.0"'))
    )
    assert body_of(response)["id"] == "100.0" and store.get("100.0")


# -- the sync's page: new records 100 to a transaction, a callback racing it -------------


def cc_rows(prefix: str, count: int) -> list[dict[str, Any]]:
    from devtools.fake_nxcloud import generate_records

    rows = generate_records(count, 1_700_000_000_000, 3_600_000, seed=count)
    return [row | {"callId": f"{prefix}-{number}"} for number, row in enumerate(rows)]


def cc_copy(row: dict[str, Any]) -> CallRecord:
    return copy("cc_cdr", row)


def test_a_page_of_new_records_is_stored_in_transactions_of_up_to_100(writer, store, calls):
    rows = cc_rows(f"tx-{random.randrange(10**9)}", 230)

    outcome = writer.write_many([cc_copy(row) for row in rows], RECEIVED, source="sync")

    assert (outcome.stored, outcome.refused) == (230, [])
    assert [operation for operation, _, _ in calls].count("PutItem") == 230  # the transactions' puts
    for row in rows[::23]:
        [item] = store.get(row["callId"], "cc_cdr")
        assert json.loads(item["raw"]) == row and item["source"] == "sync"


@pytest.mark.parametrize("raced", [0, 57, 99, 100, 229])
def test_a_callback_stored_between_the_read_and_the_transaction_is_joined_not_overwritten(
    writer, store, ddb, monkeypatch, raced
):
    """The callback stores its copy of one call after the sync's read found none: the
    transaction holding that call is cancelled whole, and each of its records goes
    through the rule, which joins the callback's copy and the sync's."""
    rows = cc_rows(f"race-{raced}-{random.randrange(10**9)}", 230)
    callback_row = rows[raced] | {"extraFromTheCallback": "kept"}
    pusher = RecordWriter(ddb, writer.table_name)
    real = writer._client.transact_write_items
    transactions: list[int] = []

    def racing(**request: Any) -> Any:
        if not transactions:
            pusher.write(cc_copy(callback_row), RECEIVED, source="push")
        transactions.append(len(request["TransactItems"]))
        return real(**request)

    monkeypatch.setattr(writer._client, "transact_write_items", racing)

    outcome = writer.write_many([cc_copy(row) for row in rows], RECEIVED + timedelta(seconds=1), source="sync")

    assert transactions == [100, 100, 30]
    assert outcome.refused == [] and outcome.stored == 229 and outcome.updated + outcome.kept == 1
    [item] = store.get(rows[raced]["callId"], "cc_cdr")
    assert sorted(item["sources"]) == ["push", "sync"]
    assert json.loads(item["raw"])["extraFromTheCallback"] == "kept"
    kept = sorted(
        json.loads(version["raw"]).get("extraFromTheCallback", "") for version in store.versions(rows[raced]["callId"])
    )
    assert kept == ["", "kept"]
    for row in rows:
        [stored] = store.get(row["callId"], "cc_cdr")
        assert stored.get("sources", [stored.get("source")]) in (["sync"], ["push", "sync"])


# -- what the outside review of this change found (each failed before its fix) -----------


def in_tables_of_their_own(ddb: Any, call_id: str, orders: list[list[CallRecord]]) -> list[dict[str, Any]]:
    """The item after each order of copies, the same call in a table of its own each time."""
    shown = []
    for copies in orders:
        names = table_names()
        create_tables(ddb, names)
        write_in_order(RecordWriter(ddb, names["CallRecordsTable"]), copies)
        [item] = CallStore(ddb, names["CallRecordsTable"], names["QuarantineTable"]).get(call_id, copies[0].kind)
        shown.append(item)
    return shown


def test_copies_that_each_bring_new_paths_stay_one_bounded_item_and_are_all_answered(writer, store, ddb, push_env):
    """Every copy a 48 KB body of 16,000 empty objects under a field of its own, which
    alone is a small item: the join's structure is bounded as its values are, so no copy
    is refused for the others', nor its retry."""
    call_id = "many-paths"

    def shaped(number: int) -> CallRecord:
        text = json.dumps(flat(call_id) | {f"z{number}": [{}] * 16_000}, separators=(",", ":"))
        return copy("pns_call_result", {}, text=text)

    outcomes = write_in_order(writer, [shaped(number) for number in range(6)])
    outcomes += write_in_order(writer, [shaped(3)])  # NXCLOUD's retry of one of them
    assert outcomes[0] == "stored" and set(outcomes[1:]) <= {"updated", "kept", "duplicate"}
    raw_item = ddb.get_item(
        TableName=push_env["TABLE_NAME"], Key={"pk": {"S": f"ID#{call_id}"}, "sk": {"S": "pns_call_result"}}
    )["Item"]
    assert len(raw_item["merge"]["B"]) < 100_000
    [item] = store.get(call_id, "pns_call_result")
    assert any("structure" in problem for problem in item["problems"])
    assert (item["durationSec"], item["statusName"]) == (6, "answered")
    assert len(store.versions(call_id)) == 6


def test_copies_with_many_fields_of_their_own_never_pass_the_item_limit(writer, store):
    """Twelve 55 KB copies, each of about 800 small fields of its own under 48-character
    names: each is answered, every copy is a version."""
    randomness = random.Random(7)

    def distinct(number: int) -> CallRecord:
        extra: dict[str, int] = {}
        while len(json.dumps(extra)) < 55_000:
            extra["".join(randomness.choices(string.ascii_letters, k=48))] = randomness.randrange(10**6)
        return copy("pns_call_result", flat("many-fields") | extra)

    outcomes = write_in_order(writer, [distinct(number) for number in range(12)])
    assert outcomes[0] == "stored" and "updated" in outcomes[1:]
    assert len(store.versions("many-fields")) == 12


def test_a_lookup_no_key_can_hold_gives_way_to_another_copys(ddb):
    """The fuller copy's caller is 3,000 digits, which no index key holds: the item keeps
    the other copy's caller, in both orders, and the call is found by it."""
    fuller = copy("pns_call_result", flat("long-caller", caller="8" * 3000, extensionCaller="1"))
    plain = copy("pns_call_result", flat("long-caller"))
    for item in in_tables_of_their_own(ddb, "long-caller", [[fuller, plain], [plain, fuller]]):
        assert item["callerNumber"] == plain.caller


def test_two_texts_of_one_copy_show_one_key_order_in_a_join_whatever_their_order(ddb):
    payload = flat("two-texts", extraA1="x", extraA2="y")
    texts = [json.dumps(payload, separators=(",", ":")), json.dumps(dict(reversed(payload.items())))]
    a, a_reversed = (copy("pns_call_result", {}, text=text) for text in texts)
    b = copy("pns_call_result", flat("two-texts", recordFile=""))
    orders = [[b, a, a_reversed], [b, a_reversed, a], [a, a_reversed, b], [a_reversed, a, b]]
    shown = {item["raw"] for item in in_tables_of_their_own(ddb, "two-texts", orders)}
    assert len(shown) == 1


def test_a_whole_number_id_of_any_length_is_its_digits(invoke, store):
    template = json.dumps(flat("ID")).replace('"callId": "ID"', '"callId": SENT')
    ids = set()
    for sent in ("1e40", "1.0e40", "1" + "0" * 40):
        response = invoke(
            "PnsCallResultFunction", event_with_body("pns-call-result.json", template.replace("SENT", sent))
        )
        ids.add(body_of(response)["id"])
    assert ids == {"1" + "0" * 40}
