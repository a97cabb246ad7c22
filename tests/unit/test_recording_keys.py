"""The S3 key of a recording (issue 19, item 3): one per (id, kind, name), whatever
the ids, and the keys of ordinary ids as they always were."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nxcloud_cdr.kinds import RECORD_KINDS
from nxcloud_cdr.recordings.archiver import object_key

DAY = "2024-01-01T00:00:00Z"


def key(nxcloud_id: str, name: str = "call", kind: str = "pns_call_result", extension: str = "mp3") -> str:
    item: dict[str, Any] = {"pk": f"ID#{nxcloud_id}", "sk": kind, "callStartUtc": DAY}
    return object_key(item, name, extension)


def hashed(nxcloud_id: str) -> str:
    """The id a record whose id is too long for a key is stored under."""
    return "id-" + hashlib.sha256(nxcloud_id.encode("utf-8", "surrogatepass")).hexdigest()


def test_an_id_that_reads_as_another_ids_hash_gets_a_key_of_its_own():
    """The review's case: ``id-<sha256 of a long id>`` took the long id's key, and so
    overwrote its recording."""
    for long_id in ("x" * 700, "é" * 200, "录" * 150, "%" * 300):
        assert key(long_id).endswith(f"/{hashed(long_id)}.mp3")  # unchanged: archived records keep theirs
        for name in ("call", "leg1", "voicemail", "call-0a1b2c3d"):
            assert key(hashed(long_id), name) != key(long_id, name)
        assert key(hashed(long_id)).endswith(f"/id%2D{hashed(long_id)[3:]}.mp3")
    # Not a hash's form: as ever.
    for literal in ("id-" + "a" * 63, "id-" + "A" * 64, "id-" + "a" * 65, "ID-" + "a" * 64, "xid-" + "a" * 64):
        assert key(literal).endswith(f"/{literal}.mp3")


def test_an_id_that_ends_as_a_joins_name_would_is_escaped_too():
    """A join names a link only another copy had ``<name>-<8 hex>``."""
    assert key("X", "call-0a1b2c3d") != key("X-call-0a1b2c3d")
    assert key("X-call-0a1b2c3d").endswith("/X%2Dcall-0a1b2c3d.mp3")
    assert key("X", "leg2-0a1b2c3d") != key("X-leg2", "0a1b2c3d")
    assert key("X", "leg2-0a1b2c3d").endswith("/X-leg2-0a1b2c3d.mp3")


def test_ordinary_ids_keep_their_keys():
    """Keys of the ids NXCLOUD sends are those archived records already have."""
    assert key("1604763745256783872") == "recordings/2024/01/01/pns_call_result/1604763745256783872.mp3"
    assert key("8f3a0c1e-2b4d-4e6f-8a9b-0c1d2e3f4a5b", "leg2", kind="cc_cdr", extension="wav") == (
        "recordings/2024/01/01/cc_cdr/8f3a0c1e-2b4d-4e6f-8a9b-0c1d2e3f4a5b-leg2.wav"
    )
    assert key("abc-123", "voicemail") == "recordings/2024/01/01/pns_call_result/abc-123-voicemail.mp3"
    assert key("abc-123", "call-0a1b2c3d") == "recordings/2024/01/01/pns_call_result/abc-123-call-0a1b2c3d.mp3"
    assert key("X-leg1") == "recordings/2024/01/01/pns_call_result/X%2Dleg1.mp3"
    assert key("a b/c") == "recordings/2024/01/01/pns_call_result/a%20b%2Fc.mp3"


def test_a_name_the_archiver_never_gives_cannot_take_another_recordings_key():
    assert key("X", "other") != key("X-other")
    assert key("X", "other").endswith("/X!other.mp3")
    assert key("X", "a/b!") == key("X", "a/b!")
    assert "/" not in key("X", "a/b!").rsplit("pns_call_result/", 1)[1]


_FRAGMENTS = st.sampled_from(
    ["id-", "id", "-", "leg", "leg1", "leg01", "-leg1", "-voicemail", "voicemail", "-call-", "call", "0a1b2c3d",
     "%2D", "%", "2D", ".", "..", "/", "~", "!", " ", "é", "录", "X", "\x00", "\n"]
)  # fmt: skip
_IDS = st.one_of(
    st.lists(_FRAGMENTS, max_size=6).map("".join),
    st.text(max_size=12),
    # Around the length past which an id is named by its hash ("é" is 6 characters encoded).
    st.builds(lambda unit, count: unit * count, st.sampled_from(["a", "é", "-", "%", "a-leg1"]), st.integers(90, 700)),
)
_NAMES = st.one_of(
    st.sampled_from(["call", "voicemail", "leg1", "leg2", "leg10", "leg01"]),
    st.builds(
        lambda base, tail: f"{base}-{tail}",
        st.sampled_from(["call", "voicemail", "leg1", "leg12"]),
        st.from_regex(r"[0-9a-f]{8}", fullmatch=True),
    ),
    st.text(max_size=8),
)


@settings(max_examples=400, deadline=None)
@given(
    ids=st.lists(_IDS, min_size=1, max_size=5, unique=True),
    names=st.lists(_NAMES, min_size=1, max_size=4, unique=True),
    kinds=st.lists(st.sampled_from([*sorted(RECORD_KINDS), "cc_cdr_x", "a%5F"]), min_size=1, max_size=2, unique=True),
)
def test_distinct_ids_kinds_and_names_give_distinct_keys(ids: list[str], names: list[str], kinds: list[str]):
    """Over tricky ids (the forms escapes and hashes take, lengths around the limit),
    each with the id that reads as its hash beside it."""
    every_id = {*ids, *(hashed(nxcloud_id) for nxcloud_id in ids)}
    seen: dict[str, tuple[str, str, str]] = {}
    for nxcloud_id in every_id:
        for kind in kinds:
            for name in names:
                made = key(nxcloud_id, name, kind)
                assert seen.setdefault(made, (nxcloud_id, kind, name)) == (nxcloud_id, kind, name), made
                assert len(made.encode()) <= 1024
