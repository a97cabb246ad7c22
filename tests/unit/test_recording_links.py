"""Which recordings a record links to, and the archive state its item shows (pure)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nxcloud_cdr.items import build_item
from nxcloud_cdr.kinds import RECORD_KINDS
from nxcloud_cdr.recording_links import ARCHIVED, PENDING, archive_state, link_id, recording_links
from nxcloud_cdr.recordings.archiver import object_key

from tests.conftest import payload_text


def test_every_kind_names_its_links():
    assert recording_links("pns_call_result", {"recordFile": " https://h/a.mp3 "}) == (("call", "https://h/a.mp3"),)
    assert recording_links("cc_report", {"voiceUrl": "https://h/b.mp3"}) == (("call", "https://h/b.mp3"),)
    assert recording_links("cc_cdr", {"recordUrl": "https://h/c.mp3", "leaveMsgUrl": "https://h/v.mp3"}) == (
        ("call", "https://h/c.mp3"),
        ("voicemail", "https://h/v.mp3"),
    )
    assert recording_links("pns_binding_not_exist", {"recordFile": "https://h/x.mp3"}) == ()


def test_legs_of_a_2024_call_each_their_own_and_a_shared_link_once():
    payload = {
        "legList": [
            {"callRecordFile": "https://h/1.mp3"},
            {"callRecordFile": "https://h/1.mp3"},
            {"callRecordFile": ""},
            "not a leg",
            {"callRecordFile": "https://h/4.mp3"},
        ]
    }
    assert recording_links("pns_call_result", payload) == (("leg1", "https://h/1.mp3"), ("leg5", "https://h/4.mp3"))


def test_no_link_is_no_link():
    for value in (None, "", "   ", 0, ["https://h/a.mp3"], {"u": 1}, "x" * 5000):
        assert recording_links("pns_call_result", {"recordFile": value}) == ()
    assert recording_links("pns_call_result", "not an object") == ()


@settings(max_examples=300, deadline=None)
@given(
    payload=st.dictionaries(
        st.sampled_from(["recordFile", "legList", "voiceUrl", "recordUrl", "leaveMsgUrl", "x"]),
        st.recursive(
            st.one_of(st.none(), st.text(max_size=10), st.integers()),
            lambda inner: st.lists(inner) | st.dictionaries(st.sampled_from(["callRecordFile", "y"]), inner),
            max_leaves=6,
        ),
    ),
    kind=st.sampled_from(sorted(RECORD_KINDS)),
)
def test_any_body_gives_distinct_links_under_distinct_names(payload: dict[str, Any], kind: str):
    links = recording_links(kind, payload)
    assert len({name for name, _ in links}) == len(links) == len({link for _, link in links})
    assert all(isinstance(link, str) and link == link.strip() and link for _, link in links)


def test_a_stored_record_with_a_link_is_pending_and_one_without_is_not():
    kind = RECORD_KINDS["pns_call_result"]
    from datetime import UTC, datetime

    from nxcloud_cdr import nxjson
    from nxcloud_cdr.times import parse_zone

    text = payload_text("pns-call-result.json")
    record = kind.map(nxjson.loads(text), text, parse_zone("+08:00"))
    item = build_item(record, datetime(2024, 1, 1, tzinfo=UTC), source="push", retention_days=0)
    assert item["recordingState"] == PENDING
    text = payload_text("pns-call-result-unanswered.json")
    record = kind.map(nxjson.loads(text), text, parse_zone("+08:00"))
    assert "recordingState" not in build_item(record, datetime(2024, 1, 1, tzinfo=UTC), source="push", retention_days=0)


def test_archive_state_keeps_what_still_applies():
    links = (("call", "https://h/a.mp3"), ("leg2", "https://h/b.mp3"))
    done = {"link": link_id("https://h/a.mp3"), "status": ARCHIVED, "s3Key": "k"}
    stale = {"link": link_id("https://h/old.mp3"), "status": ARCHIVED, "s3Key": "k2"}
    assert archive_state(links, {"call": done, "leg2": stale}) == {
        "recordingState": PENDING,
        "recordings": {"call": done},
    }
    both = {"call": done, "leg2": {"link": link_id("https://h/b.mp3"), "status": ARCHIVED}}
    assert archive_state(links, both)["recordingState"] == ARCHIVED
    assert archive_state((), both) == {}


def test_object_keys_are_readable_and_one_per_recording():
    item = {"pk": "ID#abc-123", "sk": "pns_call_result", "callStartUtc": "2022-12-19T06:50:11Z"}
    assert object_key(item, "call", "mp3") == "recordings/2022/12/19/pns_call_result/abc-123.mp3"
    assert object_key(item, "leg2", "wav") == "recordings/2022/12/19/pns_call_result/abc-123-leg2.wav"
    odd = {"pk": "ID#a/../b c", "sk": "cc_cdr", "receivedAt": "2024-01-02T00:00:00Z"}
    assert object_key(odd, "call", "mp3") == "recordings/2024/01/02/cc_cdr/a%2F..%2Fb%20c.mp3"
    assert object_key({"pk": "ID#..", "sk": "cc_cdr"}, "call", "mp3").startswith("recordings/undated/cc_cdr/id-")
    # No two recordings share a key: an id that ends as a suffix would is escaped.
    day = {"sk": "pns_call_result", "callStartUtc": "2024-01-01T00:00:00Z"}
    keys = {
        object_key({**day, "pk": f"ID#{call_id}"}, name, "mp3")
        for call_id in ("X", "X-leg1", "X-voicemail", "X-leg1-leg1", "X%2Dleg1", "X-legs")
        for name in ("call", "leg1", "voicemail")
    }
    assert len(keys) == 18
    assert object_key({**day, "pk": "ID#X-leg1"}, "call", "mp3").endswith("/X%2Dleg1.mp3")
    assert object_key({**day, "pk": "ID#8f3a-b2c1"}, "leg1", "mp3").endswith("/8f3a-b2c1-leg1.mp3")
    long_key = object_key({"pk": "ID#" + "é" * 800, "sk": "cc_cdr"}, "voicemail", "mp3")
    assert len(long_key.encode()) < 1024


def test_a_body_with_hundreds_of_links_is_not_hundreds_of_downloads():
    from nxcloud_cdr.recording_links import MAX_LINKS

    legs = [{"callRecordFile": f"https://h/{number}.mp3"} for number in range(500)]
    links = recording_links("pns_call_result", {"recordFile": "https://h/call.mp3", "legList": legs})
    assert len(links) == MAX_LINKS
    assert links[0] == ("call", "https://h/call.mp3")
