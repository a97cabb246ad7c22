"""The four documented access patterns, on DynamoDB Local with the template's indexes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from nxcloud_cdr.lookups import Page
from nxcloud_cdr.payloads.cc_report import map_cc_report
from nxcloud_cdr.payloads.pns_binding_not_exist import map_pns_binding_not_exist
from nxcloud_cdr.payloads.pns_call_result import map_pns_call_result
from nxcloud_cdr.store import CallStore
from nxcloud_cdr.times import parse_zone

from tests.conftest import as_read, payload_text

UTC8 = parse_zone("+08:00")
BASE = datetime(2024, 1, 30, 22, 0, tzinfo=UTC)  # spans a month boundary below
RECEIVED = datetime(2024, 3, 1, tzinfo=UTC)


def pns(number: int, *, caller: str, callee: str, did: str, bind: str, customer: str, minutes: int) -> dict:
    return {
        "callId": f"17{number:017d}",
        "caller": caller,
        "callee": callee,
        "did": did,
        "bindId": bind,
        "customerBindId": customer,
        "startAt": int((BASE + timedelta(minutes=minutes)).timestamp()),
        "duration": number,
        "callStatus": 1,
    }


@pytest.fixture
def calls(store: CallStore, writer) -> list[dict]:
    """60 PNS calls, one every 2 hours from 30 Jan 22:00 UTC (so into February), on two
    bindings; number 85200000001 is caller, callee or X in different calls."""
    payloads = []
    for number in range(60):
        role = number % 3
        mine, other, x = "+852 0000 0001", f"8529{number:07d}", "85288888888"
        caller, callee, did = [(mine, other, x), (other, mine, x), (other, f"8527{number:07d}", "852-0000-0001")][role]
        payload = pns(
            number,
            caller=caller,
            callee=callee,
            did=did,
            bind="bind-a" if number % 2 == 0 else "bind-b",
            customer="order-a" if number % 2 == 0 else "order-b",
            minutes=number * 120,
        )
        writer.write(map_pns_call_result(payload, json.dumps(payload), UTC8), RECEIVED, source="push")
        payloads.append(payload)
    return payloads


def drain(fetch) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        page: Page = fetch(cursor)
        pages.append(page.items)
        cursor = page.cursor
        if cursor is None:
            return pages


def ids(items: list[dict]) -> list[str]:
    return [item["nxcloudId"] for item in items]


def test_one_record_by_nxcloud_id_of_any_kind(store, writer, calls):
    binding = json.loads(payload_text("pns-binding-not-exist.json"))
    writer.write(map_pns_binding_not_exist(binding, json.dumps(binding), UTC8), RECEIVED, source="push")
    # A call-centre session id that happens to equal a PNS call id stays a separate item.
    report = {"callSessionId": calls[0]["callId"], "callStartTime": "2024-01-31 06:00:00"}
    writer.write(map_cc_report(report, json.dumps(report), UTC8), RECEIVED, source="push")

    found = store.get(calls[0]["callId"])

    assert sorted(item["kind"] for item in found) == ["cc_report", "pns_call_result"]
    [only] = store.get(calls[0]["callId"], kind="pns_call_result")
    assert as_read(only)["fields"]["caller"] == calls[0]["caller"]
    assert ids(store.get("1640920940635361280")) == ["1640920940635361280"]
    assert store.get("no-such-id") == []


def test_time_range_of_one_kind_paged_across_months(store, calls):
    start = BASE + timedelta(hours=6)  # calls 3..
    end = BASE + timedelta(hours=100)  # ..up to but not including call 50 at 100 h

    pages = drain(lambda cursor: store.by_time("pns_call_result", start, end, limit=7, cursor=cursor))

    flat = [item for page in pages for item in page]
    assert ids(flat) == [call["callId"] for call in calls[3:50]]
    assert all(len(page) == 7 for page in pages[:-1])
    assert {item["callStartUtc"][:7] for item in flat} == {"2024-01", "2024-02"}
    assert store.by_time("pns_binding_not_exist", start, end).items == []


def test_time_range_page_boundary_at_month_end(store, calls):
    # Calls 0 (30 Jan 22:00) and 1 (31 Jan 00:00) are January's only ones in range.
    start, end = BASE, BASE + timedelta(hours=5)

    first = store.by_time("pns_call_result", start, end, limit=2)
    second = store.by_time("pns_call_result", start, end, limit=2, cursor=first.cursor)

    assert ids(first.items) == [calls[0]["callId"], calls[1]["callId"]]
    assert ids(second.items) == [calls[2]["callId"]]
    assert second.cursor is None


def test_number_as_caller_callee_or_x_newest_first(store, calls):
    expected = [call["callId"] for call in reversed(calls)]  # every call involves it

    pages = drain(lambda cursor: store.by_number("85200000001", limit=8, cursor=cursor))

    flat = [item for page in pages for item in page]
    assert ids(flat) == expected
    assert [item["callStartUtc"] for item in flat] == sorted((item["callStartUtc"] for item in flat), reverse=True)


def test_number_lookup_finds_each_role(store, calls):
    [as_callee] = [item for item in store.by_number("85290000001").items]
    assert as_callee["nxcloudId"] == calls[1]["callId"]
    assert store.by_number("85270000002").items[0]["calleeNumber"] == "85270000002"
    assert len(store.by_number("85288888888", limit=100).items) == 40  # X of roles 0 and 1


def test_calls_of_a_binding_by_bind_id_and_customer_bind_id(store, calls):
    by_bind = drain(lambda cursor: store.by_binding(bind_id="bind-a", limit=9, cursor=cursor))
    by_customer = store.by_binding(customer_bind_id="order-b", limit=100)

    assert ids([item for page in by_bind for item in page]) == [c["callId"] for c in reversed(calls[0::2])]
    assert ids(by_customer.items) == [c["callId"] for c in reversed(calls[1::2])]
    assert by_customer.cursor is None
    with pytest.raises(ValueError, match="exactly one"):
        store.by_binding()


def test_index_items_carry_the_listing_summary(store, calls):
    [item] = store.by_binding(bind_id="bind-a", limit=1).items

    assert set(item) >= {"kind", "nxcloudId", "callStartUtc", "callerNumber", "durationSec", "statusName"}
    assert "raw" not in item and "fields" not in item  # one GetItem away, not copied six times


def test_record_without_call_time_is_indexed_at_its_receipt(store, writer):
    payload = {"requestId": "99", "code": 10013, "data": {"occurrenceTime": ""}}
    writer.write(map_pns_binding_not_exist(payload, "{}", UTC8), RECEIVED, source="push")

    page = store.by_time("pns_binding_not_exist", RECEIVED - timedelta(days=1), RECEIVED + timedelta(days=1))

    assert ids(page.items) == ["99"]
    assert "callStartUtc" not in page.items[0]


def test_a_2024_format_call_is_found_by_every_lookup(store, writer, calls):
    # The same lookups as the flat format's, the Y number one more.
    payload = json.loads(payload_text("pns-call-result-2024.json"))
    writer.write(map_pns_call_result(payload, json.dumps(payload), UTC8), RECEIVED, source="push")
    call_id = payload["callId"]
    start = datetime(2024, 5, 1, tzinfo=UTC)

    [item] = store.get(call_id)
    assert (item["kind"], item["statusName"], item["durationSec"]) == ("pns_call_result", "answered", 55)
    assert ids(store.by_time("pns_call_result", start, start + timedelta(seconds=1)).items) == [call_id]
    for number in ("85261234567", "85298765432", "85230001111", "85230002222"):  # caller, callee, X, Y
        assert ids(store.by_number(number).items) == [call_id], number
    assert ids(store.by_binding(bind_id=payload["bindId"]).items) == [call_id]
    assert ids(store.by_binding(customer_bind_id=payload["customerBindId"]).items) == [call_id]
