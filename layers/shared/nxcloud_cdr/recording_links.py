"""Which recordings a record links to, and what its item says of their archive.

Pure functions, on every write path (pushes, callbacks, the sync, replays): a record
with a link is written with ``recordingState = "pending"``, which is what the table's
stream passes to the archiver (:mod:`.recordings`). The archiver records each archived
(or failed) recording in the item's ``recordings`` map, by name:

- ``call``: the call's recording (``recordFile``, ``voiceUrl``, ``recordUrl``);
- ``voicemail``: a call-centre voicemail (``leaveMsgUrl``);
- ``leg<n>``: the recording of the n-th leg of a 2024-format PNS call (``callRecordFile``).

The links are read from the body NXCLOUD sent, not from the normalised fields: a link
the models could not read is still archived.
"""

from __future__ import annotations

import hashlib
from typing import Any

# Top-level fields of each kind that hold a link, and the name of their recording.
LINK_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "pns_call_result": (("recordFile", "call"),),
    "cc_report": (("voiceUrl", "call"),),
    "cc_cdr": (("recordUrl", "call"), ("leaveMsgUrl", "voicemail")),
}
# (list field, link field of each entry): per-leg recordings.
LEG_FIELDS: dict[str, tuple[str, str]] = {"pns_call_result": ("legList", "callRecordFile")}

# Item attributes (README, "Recordings").
STATE = "recordingState"
ARCHIVE = "recordings"
# Present while a recording of the item failed: the key of the sparse ByRecordingFailure
# index, which `nxcdr recordings --failed` reads. "retrying" while the archiver's
# schedule still retries one of them (the partition it reads), "failed" once none.
FAILED = "recordingFailed"
RETRYING = "retrying"
# Set by `nxcdr recordings retry` to the time of the request: every recording not
# archived that failed before it is tried once more, those the archiver gave up on
# included. The archiver removes it once it has tried them all.
FORCE = "recordingRetry"
PENDING = "pending"
ARCHIVED = "archived"
FAILED_STATE = "failed"
# A link longer than this is no URL NXCLOUD sends: it is not followed (nor kept twice).
MAX_LINK_CHARS = 2048
# More recordings than any call has (a 2024 call has a leg per transfer): a body with
# hundreds of links is not one to fetch hundreds of files for. The rest stay in raw.
MAX_LINKS = 32


def _link(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text if text and len(text) <= MAX_LINK_CHARS else None


def recording_links(kind: str, payload: Any) -> tuple[tuple[str, str], ...]:
    """The (name, link) of every recording a payload links to, each link once (the
    legs of one call often share its recording: the first name keeps it)."""
    if not isinstance(payload, dict):
        return ()
    found: dict[str, str] = {}
    for field, name in LINK_FIELDS.get(kind, ()):
        link = _link(payload.get(field))
        if link and link not in found:
            found[link] = name
    if kind in LEG_FIELDS:
        list_field, link_field = LEG_FIELDS[kind]
        legs = payload.get(list_field)
        for number, leg in enumerate(legs if isinstance(legs, list) else [], start=1):
            link = _link(leg.get(link_field)) if isinstance(leg, dict) else None
            if link and link not in found:
                found[link] = f"leg{number}"
    return tuple((name, link) for link, name in found.items())[:MAX_LINKS]


def link_id(link: str) -> str:
    """What an entry of ``recordings`` keeps of its link (the link itself is in
    ``raw``): enough to tell whether the entry is still about the link the item shows."""
    return hashlib.sha256(link.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def is_archived(entry: Any, link: str) -> bool:
    """Whether an entry of an item's ``recordings`` is this link, archived."""
    return isinstance(entry, dict) and entry.get("link") == link_id(link) and entry.get("status") == ARCHIVED


def archive_state(links: tuple[tuple[str, str], ...], archive: dict[str, Any]) -> dict[str, Any]:
    """The recording attributes of an item with these links and this ``recordings``
    map (entries of links it no longer has are dropped): ``recordingState`` pending
    while a link is not archived, archived when all are; nothing without links."""
    if not links:
        return {}
    ids = {(name, link_id(link)) for name, link in links}
    kept = {name: entry for name, entry in archive.items() if (name, (entry or {}).get("link")) in ids}
    done = all(is_archived(kept.get(name), link) for name, link in links)
    values: dict[str, Any] = {STATE: ARCHIVED if done else PENDING}
    if kept:
        values[ARCHIVE] = kept
    return values
