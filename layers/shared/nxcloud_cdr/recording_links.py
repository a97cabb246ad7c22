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

Links that name one object (:func:`object_of`: they differ in their query string, say,
a signature NXCLOUD renews) are one recording, fetched once (:func:`distinct_objects`):
in a body (:func:`recording_links`), in the item's state (:func:`archive_state`, on
every write path) and in what the archiver plans (its ``links_of``), alike, so that the
writers and the archiver agree on what the item still needs.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

# Top-level fields of each kind that hold a link, and the name of their recording.
LINK_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "pns_call_result": (("recordFile", "call"),),
    "cc_report": (("voiceUrl", "call"),),
    "cc_cdr": (("recordUrl", "call"), ("leaveMsgUrl", "voicemail")),
}
# (list field, link field of each entry): per-leg recordings.
LEG_FIELDS: dict[str, tuple[str, str]] = {"pns_call_result": ("legList", "callRecordFile")}

# Item attributes (docs/recordings.md).
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


# Characters a request line keeps as they are: the fetcher percent-encodes the rest of
# a path as a browser does (``a b`` and ``a%20b`` are one request, one object).
REQUEST_PATH_SAFE = "/%?=&;:@!$'()*+,~-._"
_DEFAULT_PORTS = {"https": 443, "http": 80}
# A recording's name: ``call``, ``voicemail`` and ``leg<n>`` as a body names them, then
# a join's ``<name>-<8 hex>`` for a link only another copy had (:mod:`.merge`).
_NAME = re.compile(r"(call|voicemail|leg([0-9]+))(-[0-9a-f]{8})?")
_BASE_ORDER = {"call": 0, "voicemail": 1}


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
    return distinct_objects((name, link) for link, name in found.items())[:MAX_LINKS]


_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _escape(match: re.Match[str]) -> str:
    character = chr(int(match.group(1), 16))
    return character if character in _UNRESERVED else "%" + match.group(1).upper()


def _without_dot_segments(path: str) -> str:
    """RFC 3986, 5.2.4: ``/a/./b/../c`` is ``/a/c``."""
    output: list[str] = []
    segments = path.split("/")
    for number, segment in enumerate(segments):
        last = number == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/".join(output) if output and output[0] == "" else "/" + "/".join(output)


def request_path(path: str) -> str:
    """A link's path as it is requested, normalised as RFC 3986 (6.2.2) says a URI is
    without changing what it names: what a request line cannot hold percent-encoded (a
    file name in Chinese, a space), unreserved characters decoded (``%61`` is ``a``),
    escapes in upper case, dot segments removed. Links whose paths differ in those
    alone are one object, one download. (``//`` is not ``/``: servers such as S3 tell
    them apart.)"""
    quoted = quote(path or "/", safe=REQUEST_PATH_SAFE, errors="surrogatepass")
    return _without_dot_segments(_ESCAPE.sub(_escape, quoted))


def object_of(link: str) -> tuple[str, ...]:
    """The object a link names: its scheme, host (the case of a host name is no
    difference, nor its trailing dot or Unicode form: it is checked in IDNA form, as
    fetched), port, credentials and path as the request sends it. Not its query string
    nor its fragment: links that differ only there are one object, one download."""
    try:
        parts = urlsplit(link)
        port = parts.port
        host = parts.hostname or ""
    except ValueError:  # no URL: an object of its own (the fetcher refuses it)
        return ("", link)
    with contextlib.suppress(UnicodeError):  # else refused by the fetcher: the text is the host
        host = host.encode("idna").decode("ascii")
    scheme = parts.scheme.lower()
    port_text = "" if port is None or port == _DEFAULT_PORTS.get(scheme) else str(port)
    credentials = f"{parts.username}:{parts.password}" if parts.username or parts.password else ""
    return (scheme, host.lower().rstrip("."), port_text, credentials, request_path(parts.path))


def _name_rank(name: str) -> tuple[int, int, int, str, str]:
    """The order in which names keep an object several links name: a body's names
    (``call``, ``voicemail``, ``leg1``, ``leg2``...) before a join's ``<name>-<id>``,
    any other name last."""
    match = _NAME.fullmatch(name)
    if match is None:
        return (2, 0, 0, "", name)
    digits = (match.group(2) or "").lstrip("0")
    return (1 if match.group(3) else 0, _BASE_ORDER.get(match.group(1), 2), len(digits), digits, name)


def distinct_objects(links: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The (name, link) pairs with one pair kept per object the links name
    (:func:`object_of`), in their order: the pair of the first name in
    :func:`_name_rank` order (then the least link), so that which link is fetched, and
    under which name, is a function of the set of pairs, not of their order."""
    pairs = list(links)
    best: dict[tuple[str, ...], tuple[str, str]] = {}
    for name, link in pairs:
        target = object_of(link)
        kept = best.get(target)
        if kept is None or (_name_rank(name), link) < (_name_rank(kept[0]), kept[1]):
            best[target] = (name, link)
    chosen = set(best.values())
    return tuple(pair for pair in dict.fromkeys(pairs) if pair in chosen)


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
    while a link is not archived, archived when all are; nothing without links. Links
    to one object count once (:func:`distinct_objects`), as the archiver fetches them."""
    links = distinct_objects(links)
    if not links:
        return {}
    ids = {(name, link_id(link)) for name, link in links}
    kept = {name: entry for name, entry in archive.items() if (name, (entry or {}).get("link")) in ids}
    done = all(is_archived(kept.get(name), link) for name, link in links)
    values: dict[str, Any] = {STATE: ARCHIVED if done else PENDING}
    if kept:
        values[ARCHIVE] = kept
    return values
