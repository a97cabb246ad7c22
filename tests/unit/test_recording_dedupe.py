"""Links that name one object (issue 19, item 6): one recording, one download, however
many links (of a body, or of the copies a join keeps) differ in their query string."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nxcloud_cdr import recording_links as module
from nxcloud_cdr.recording_links import ARCHIVED, MAX_LINKS, PENDING, archive_state, link_id, recording_links
from nxcloud_cdr.recordings.archiver import RecordingArchiver, links_of
from nxcloud_cdr.recordings.fetch import FetchPolicy, check_link

HOST = "https://remote.record.nxcloud.com"


def object_of(link: str) -> tuple[str, ...]:
    return module.object_of(link)


def distinct_objects(links: Any) -> tuple[tuple[str, str], ...]:
    return module.distinct_objects(links)


def test_links_that_differ_only_in_their_query_or_the_hosts_case_name_one_object():
    same = [
        f"{HOST}/pns/a.mp3",
        f"{HOST}/pns/a.mp3?x=1",
        f"{HOST}/pns/a.mp3?x=2&Signature=abc",
        f"{HOST}/pns/a.mp3#t=10",
        "https://REMOTE.Record.NXCLOUD.com/pns/a.mp3?x=3",
        "HTTPS://remote.record.nxcloud.com./pns/a.mp3",
        "https://remote.record.nxcloud.com:443/pns/a.mp3",
    ]
    assert len({object_of(link) for link in same}) == 1
    # As the fetcher requests them: one path.
    assert object_of(f"{HOST}/录音/a b.mp3") == object_of(f"{HOST}/%E5%BD%95%E9%9F%B3/a%20b.mp3?x=1")
    others = [
        f"{HOST}/pns/A.mp3",  # a path's case is the host's to tell
        f"{HOST}/pns/a.mp3/",
        f"{HOST}/pns/b.mp3?x=1",
        "http://remote.record.nxcloud.com/pns/a.mp3",
        f"{HOST}:8443/pns/a.mp3",
        "https://cc.nxcloud.com/pns/a.mp3",
        "https://user:pw@remote.record.nxcloud.com/pns/a.mp3",
        "not a link",
        "https://[::1/a.mp3",
    ]
    assert len({object_of(link) for link in [same[0], *others]}) == len(others) + 1


def test_a_body_whose_links_name_one_object_is_one_recording():
    """The review's case: up to 32 downloads of one object from one body."""
    legs = [{"callRecordFile": f"{HOST}/pns/a.mp3?x={number}"} for number in range(40)]
    body = {"recordFile": f"{HOST}/pns/a.mp3?x=call", "legList": legs}
    assert recording_links("pns_call_result", body) == (("call", f"{HOST}/pns/a.mp3?x=call"),)
    assert recording_links("pns_call_result", {"legList": legs}) == (("leg1", f"{HOST}/pns/a.mp3?x=0"),)
    # The slots go to distinct objects: a body with 40 copies of one link and 40 files keeps 32 files.
    files = [{"callRecordFile": f"{HOST}/pns/{number}.mp3"} for number in range(40)]
    kept = recording_links("pns_call_result", {"legList": legs + files})
    assert len(kept) == MAX_LINKS
    assert [link for _, link in kept[1:]] == [f"{HOST}/pns/{number}.mp3" for number in range(MAX_LINKS - 1)]
    # Other objects stay their own recordings.
    both = {"recordUrl": f"{HOST}/cc/a.mp3?sig=1", "leaveMsgUrl": f"{HOST}/cc/v.mp3?sig=1"}
    assert [name for name, _ in recording_links("cc_cdr", both)] == ["call", "voicemail"]


_PAIRS = st.lists(
    st.tuples(
        st.sampled_from(["call", "voicemail", "leg1", "leg2", "leg10", "call-0a1b2c3d", "leg2-ffffffff", "odd"]),
        st.builds(
            lambda host, path, query: f"https://{host}/{path}{query}",
            st.sampled_from(["h.nxcloud.com", "H.nxcloud.com", "h.nxcloud.com.", "g.nxcloud.com"]),
            st.sampled_from(["a.mp3", "A.mp3", "b.mp3"]),
            st.sampled_from(["", "?x=1", "?x=2", "?y", "#f"]),
        ),
    ),
    max_size=12,
    unique_by=lambda pair: pair[0],
)


@settings(max_examples=300, deadline=None)
@given(pairs=_PAIRS, seed=st.integers(0, 1000))
def test_one_pair_per_object_whatever_the_order(pairs: list[tuple[str, str]], seed: int):
    kept = distinct_objects(pairs)
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    assert set(distinct_objects(shuffled)) == set(kept)
    assert set(kept) <= set(pairs)
    assert sorted({object_of(link) for _, link in kept}) == sorted({object_of(link) for _, link in pairs})
    assert len({object_of(link) for _, link in kept}) == len(kept)
    assert distinct_objects(kept) == kept


def test_a_bodys_name_keeps_the_object_over_a_joins():
    pairs = [("leg2-0a1b2c3d", f"{HOST}/a.mp3?x=0"), ("leg10", f"{HOST}/a.mp3?x=9"), ("leg2", f"{HOST}/a.mp3?x=5")]
    assert distinct_objects(pairs) == (("leg2", f"{HOST}/a.mp3?x=5"),)
    assert distinct_objects(reversed(pairs)) == (("leg2", f"{HOST}/a.mp3?x=5"),)


def test_the_items_state_counts_an_object_once():
    """What the writers mark pending and what the archiver fetches agree: a second
    link to an archived object leaves the item archived, not pending for ever."""
    first, second = f"{HOST}/a.mp3?sig=1", f"{HOST}/a.mp3?sig=2"
    links = (("call", first), ("call-0a1b2c3d", second))
    done = {"link": link_id(first), "status": ARCHIVED, "s3Key": "k"}
    assert archive_state(links, {"call": done}) == {"recordingState": ARCHIVED, "recordings": {"call": done}}
    assert archive_state(links, {})["recordingState"] == PENDING


def item(**attributes: Any) -> dict[str, Any]:
    return {
        "pk": "ID#c1",
        "sk": "pns_call_result",
        "revision": 1,
        "recordingState": "pending",
        "callStartUtc": "2024-05-01T00:00:00Z",
        **attributes,
    }


def archived_with(stored: dict[str, Any]) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The archiver on one item: what it fetched, and what it recorded."""
    fetched: list[tuple[str, str]] = []
    recorded: dict[str, Any] = {}

    class Stubbed(RecordingArchiver):
        def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
            return stored

        def _fetch(self, stored: dict[str, Any], name: str, link: str) -> dict[str, Any]:
            fetched.append((name, link))
            return {"link": link_id(link), "status": ARCHIVED, "s3Key": name, "bytes": 1, "sha256": "0"}

        def _record(self, stored: dict[str, Any], links: Any, archive: dict[str, Any], *, deferred: bool) -> bool:
            recorded.update(self._outcome(links, archive, deferred=deferred))
            return True

    Stubbed(None, "t", None, "b", FetchPolicy(), sleep=lambda _: None).archive({"pk": "ID#c1", "sk": "x"})
    return fetched, recorded


def test_the_archiver_fetches_an_object_once_from_a_body_or_a_join():
    legs = [{"callRecordFile": f"{HOST}/pns/a.mp3?x={number}"} for number in range(5)]
    fetched, recorded = archived_with(item(raw=json.dumps({"callId": "c1", "legList": legs})))
    assert fetched == [("leg1", f"{HOST}/pns/a.mp3?x=0")]
    assert recorded["recordingState"] == ARCHIVED
    assert list(recorded["recordings"]) == ["leg1"]
    # A join lists every link of every copy (merge.py): copies with a renewed signature.
    joined = [["call", f"{HOST}/pns/b.mp3?sig=2"], ["call-0a1b2c3d", f"{HOST}/pns/b.mp3?sig=1"]]
    fetched, recorded = archived_with(item(raw="{}", recordingLinks=joined))
    assert fetched == [("call", f"{HOST}/pns/b.mp3?sig=2")]
    assert links_of(item(raw="{}", recordingLinks=joined)) == (("call", f"{HOST}/pns/b.mp3?sig=2"),)
    assert list(recorded["recordings"]) == ["call"]


def test_paths_that_differ_only_as_rfc_3986_normalises_them_name_one_object():
    # Escapes of unreserved characters, the case of an escape's hex and dot segments
    # are no difference (RFC 3986, 6.2.2): an outside review had 11 spellings of one
    # file start 9 downloads, and 40 of them 32.
    same = [
        f"{HOST}/rec/abc.mp3",
        f"{HOST}/rec/%61bc.mp3",
        f"{HOST}/rec/%61%62%63.mp3",
        f"{HOST}/rec/./abc.mp3",
        f"{HOST}/x/../rec/abc.mp3",
        f"{HOST}/../rec/abc.mp3",
        f"{HOST}/rec/y/./../abc.mp3",
    ]
    assert len({object_of(link) for link in same}) == 1
    assert object_of(f"{HOST}/rec/a%2fb.mp3") == object_of(f"{HOST}/rec/a%2Fb.mp3")
    # Not the same object: a reserved character's escape, or an empty segment.
    assert object_of(f"{HOST}/rec/a%2Fb.mp3") != object_of(f"{HOST}/rec/a/b.mp3")
    assert object_of(f"{HOST}/rec//abc.mp3") != object_of(f"{HOST}/rec/abc.mp3")
    legs = [{"callRecordFile": f"{HOST}/rec/" + "./" * number + "abc.mp3"} for number in range(40)]
    assert len(recording_links("pns_call_result", {"legList": legs})) == 1


def test_the_fetcher_requests_the_path_the_object_is_named_by():
    policy = FetchPolicy(resolver=lambda host, port: ["8.8.4.4"])
    target = check_link(f"{HOST}/x/../rec/%61bc%2f.mp3?sig=%7e1", policy)
    assert target.path == "/rec/abc%2F.mp3?sig=%7e1"
