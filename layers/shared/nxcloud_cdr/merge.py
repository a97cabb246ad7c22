"""How the copies of one call become one item: a *join* of what each copy says, value
by value, as its kind's model reads it.

NXCLOUD can report a call more than once, and not identically: the call-centre
call-log callback arrives before the recording exists and the sync's copy has it; a
push is corrected; the 2024 PNS format and the flat one describe the same call. The
item shows the merge of every distinct copy received. The merge is a **join**
(commutative, associative, idempotent), so the item is a function of the *set* of
copies, never of their order, and it is computed from the item's own state and the new
copy alone: a new copy costs the same whatever number of copies came before it.

What the join keeps, in :class:`State` (stored on the item, compressed):

- **Every value of the body, by where it is** (a *leaf*: a path of object keys and list
  entries). At each path the best value of any copy wins: a value the model reads over
  one it could not read (``"duration": 1e400``, a time as text where the model wants
  epoch milliseconds), either over no value (``null``, ``""``, ``NaN``, an unset epoch
  time: 0 in a field the kind names); among values of one standing, the better-ranked
  copy's (:attr:`.records.CallRecord.rank`). ``0`` and ``false`` are values elsewhere
  (``direction`` 0 is inbound).
- **Lists by identity.** Entries of a list of objects are matched by their ``uuid``
  when every entry has a distinct one (NXCLOUD's 2024 legs), else by position, and
  merged like objects; other lists are values, the fullest wins.
- **Formats apart.** Copies of different formats (flat and 2024 PNS call results) are
  joined in separate groups; the body shown is that of the group whose best copy ranks
  highest, so no body mixes two formats into one that reads worse than either.
- **The call, by meaning** (:data:`SUMMARY_FIELDS`): start, ring, answer, end, talk
  time, outcome, hang-up side and cause, direction, numbers, binding ids, each the
  best-ranked copy's that has it, across formats. An answered call stays answered
  (a copy that saw the answer knows more than one written before it). The item's
  lookups and ``callSummary`` come from these, so the item never yields less than a
  copy for any of them.
- **Every recording link** of every copy (at most :data:`.recording_links.MAX_LINKS`,
  the best-ranked copies' first), so that each is archived.
- The sources that sent a copy, when the first copy arrived (and from where), and when
  the last one did.

**Bounded.** The leaves are held to :data:`LEAF_BUDGET` bytes: past it the leaves with
the lowest standing (those only the lowest-ranked copies have, first) are left out of
the body shown, a threshold on a total order, so what is left out is a function of the
set too. A left-out leaf stays in the state as a marker (its standing and size, not its
value), so that it keeps losing to what it beat; the copies themselves are kept whole
as versions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import nxjson
from .recording_links import MAX_LINKS, link_id, recording_links
from .records import lookups
from .storable import MAX_INDEX_KEY_BYTES, utf8_bytes

# Objects nested deeper than this are taken whole (a leaf): no NXCLOUD payload nests
# near it, and a body that does must not exhaust the stack.
MAX_DEPTH = 32
# The bytes the leaves of a state may take (their paths and JSON text, each leaf also
# charged for its rank), so that the item stays below DynamoDB's 400 KB whatever the
# copies: room is left for the item's other attributes and the archiver's notes.
LEAF_BUDGET = 300_000
_RANK_CHARGE = 100
# The bytes the body's structure may take beside the values: every path any copy had
# (its containers, its place in the key order, the marker of a left-out value). Past it
# the paths of the lowest standing are forgotten, so that the state stays bounded
# whatever number of distinct paths the copies bring (charged as the leaves are).
STRUCTURE_BUDGET = 80_000
_NODE_CHARGE = 16

# The call by meaning: what every kind's mapping yields (``callSummary`` and lookups).
SUMMARY_FIELDS = (
    "startUtc",
    "ringUtc",
    "answerUtc",
    "endUtc",
    "durationSec",
    "outcome",
    "hangupBy",
    "hangupCause",
    "direction",
    "recordingUrl",
    "callerNumber",
    "calleeNumber",
    "didNumber",
    "didYNumber",
    "bindId",
    "customerBindId",
)
# Values that say nothing.
_NO_VALUE = {"outcome": "unknown", "hangupBy": "unknown"}

Segment = tuple[str, Any]  # ("k", name) of an object, ("u", uuid) or ("i", position) of a list
Path = tuple[Segment, ...]
Loc = tuple[str | int, ...]
OBJECT, LIST = "obj", "list"


def _is_value(value: Any) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Decimal):
        return value.is_finite()
    return True


def _unset_time(value: Any) -> bool:
    """An epoch time NXCLOUD sends for "not set": 0 (or less), as a number or text."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except ArithmeticError:
            return False
    return isinstance(value, int | float | Decimal) and value <= 0


def fullness(value: Any, zero_is_unset: frozenset[str] = frozenset()) -> int:
    """How many values a value holds (leaves that are not ``null``, ``""``, ``NaN`` or
    infinite, nor an unset time under a name of ``zero_is_unset``, at any depth, lists
    included). Iterative: a body may nest as deep as the JSON parser allows."""
    total = 0
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        name, current = pending.pop()
        if isinstance(current, dict):
            pending.extend(current.items())
        elif isinstance(current, list):
            pending.extend((name, inner) for inner in current)
        elif _is_value(current) and not (name in zero_is_unset and _unset_time(current)):
            total += 1
    return total


@dataclass(frozen=True)
class Copy:
    """What one copy brings to the join (pure; see :func:`copy_of`)."""

    rank: str
    group: str
    payload: dict[str, Any]
    unreadable: frozenset[Loc]
    zero_is_unset: frozenset[str]
    summary: dict[str, Any]
    links: tuple[tuple[str, str], ...]
    source: str
    received_at: str
    # Which text of this content it was (:func:`text_key`): of two texts of one copy,
    # the key order of the one the rule prefers is shown, whichever arrived first.
    text: tuple[int, str] = (0, "")


def copy_of(
    record: Any, payload: dict[str, Any], *, source: str, received_at: str, zero_is_unset: frozenset[str]
) -> Copy:
    """The contribution of a mapped copy (a :class:`.records.CallRecord`) to the join."""
    from .mapping import SUMMARY  # noqa: PLC0415 - mapping imports this module's neighbours

    summary = dict(record.fields.get(SUMMARY) or {})
    # A lookup value no key can hold is not one: another copy's that can wins.
    summary |= {name: value for name, value in lookups(record).items() if _key_size(value) is not None}
    summary = {
        name: value
        for name, value in summary.items()
        if name in SUMMARY_FIELDS and value is not None and value != "" and value != _NO_VALUE.get(name)
    }
    return Copy(
        rank=record.rank,
        group=record.format,
        payload=payload,
        unreadable=frozenset(record.unreadable),
        zero_is_unset=zero_is_unset,
        summary=summary,
        links=tuple(record.recordings),
        source=source,
        received_at=received_at,
        text=text_key(record.raw),
    )


def text_key(text: str) -> tuple[int, str]:
    """Which of two texts of one copy (the same content in other white space or key
    order) is shown: the shorter, then the one whose SHA-256 is first. A function of
    the texts received, never of their order."""
    return (len(text), hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())


def _key_size(value: str | None) -> int | None:
    """The bytes of a lookup value an index key can hold; None for one it cannot."""
    size = utf8_bytes(value) if value else None
    return size if size is not None and size <= MAX_INDEX_KEY_BYTES else None


@dataclass
class Leaf:
    tier: int  # 2 a value the model reads, 1 one it could not read, 0 no value
    fullness: int
    rank: str
    size: int
    value: Any = None
    dropped: bool = False

    @property
    def standing(self) -> tuple[int, int, str]:
        return (self.tier, self.fullness, self.rank)


@dataclass
class State:
    """The join of a set of copies (see the module's docstring)."""

    leaves: dict[tuple[str, Path], Leaf] = field(default_factory=dict)
    # (group, path, OBJECT or LIST) -> the best rank of a copy with that container there
    containers: dict[tuple[str, Path, str], str] = field(default_factory=dict)
    # (group, path) -> (best rank of a copy with something there, its text, its position
    # in that text)
    order: dict[tuple[str, Path], tuple[str, tuple[int, str], int]] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)  # group -> its best rank
    summary: dict[str, tuple[tuple[int, str], Any]] = field(default_factory=dict)
    links: dict[str, tuple[str, str]] = field(default_factory=dict)  # link -> (name, best rank)
    sources: set[str] = field(default_factory=set)
    first: tuple[str, str] = ("", "")  # (receivedAt, source) of the first copy
    last_seen: str = ""
    # Whether paths past STRUCTURE_BUDGET were forgotten (sticky: a function of the set,
    # since a set past the budget makes every order pass it at its last copy).
    forgotten: bool = False

    # -- the join -------------------------------------------------------------------

    def add(self, copy: Copy) -> None:
        """Join one copy in (idempotent: a copy joined twice changes nothing)."""
        group = copy.group
        if copy.rank > self.groups.get(group, ""):
            self.groups[group] = copy.rank
        for path, loc, kind, value, position in _walk(copy.payload):
            order = self.order.get((group, path))
            # Two texts of one copy (one rank) may list keys in other orders: the
            # preferred text's order is shown, so it is a function of the set.
            if order is None or copy.rank > order[0] or (copy.rank == order[0] and copy.text < order[1]):
                self.order[(group, path)] = (copy.rank, copy.text, position)
            if kind in (OBJECT, LIST):
                if copy.rank > self.containers.get((group, path, kind), ""):
                    self.containers[(group, path, kind)] = copy.rank
                continue
            name = str(path[-1][1]) if path and path[-1][0] == "k" else ""
            full = 0 if name in copy.zero_is_unset and _unset_time(value) else fullness(value, copy.zero_is_unset)
            tier = 0 if full == 0 else (1 if _under(loc, copy.unreadable) else 2)
            leaf = Leaf(tier, full, copy.rank, _leaf_size(path, value), value)
            stored = self.leaves.get((group, path))
            if stored is None or leaf.standing > stored.standing:
                self.leaves[(group, path)] = leaf
        for name, value in copy.summary.items():
            key = (1 if name == "outcome" and value == "answered" else 0, copy.rank)
            held = self.summary.get(name)
            if held is None or key > held[0]:
                self.summary[name] = (key, value)
        for name, link in copy.links:
            held_link = self.links.get(link)
            if held_link is None or copy.rank > held_link[1]:
                self.links[link] = (name, copy.rank)
        if len(self.links) > MAX_LINKS:
            best = sorted(self.links.items(), key=lambda pair: (pair[1][1], pair[0]), reverse=True)[:MAX_LINKS]
            self.links = dict(best)
        self.sources.add(copy.source)
        if not self.first[0] or (copy.received_at, copy.source) < self.first:
            self.first = (copy.received_at, copy.source)
        self.last_seen = max(self.last_seen, copy.received_at)

    def clone(self) -> State:
        """A copy to join into (leaf values are never changed in place: shared)."""
        return State(
            {key: dataclasses.replace(leaf) for key, leaf in self.leaves.items()},
            dict(self.containers),
            dict(self.order),
            dict(self.groups),
            dict(self.summary),
            dict(self.links),
            set(self.sources),
            self.first,
            self.last_seen,
            self.forgotten,
        )

    def same_as(self, other: State) -> bool:
        """Whether two states show the same (when the last copy arrived aside)."""
        return encode(self, with_last_seen=False) == encode(other, with_last_seen=False)

    # -- what the item shows ----------------------------------------------------------

    @property
    def shown_group(self) -> str:
        return max(self.groups.items(), key=lambda pair: (pair[1], pair[0]))[0] if self.groups else ""

    def body(self) -> dict[str, Any]:
        """The body the item shows: the join of the shown group's copies."""
        group = self.shown_group
        children: dict[Path, list[Path]] = {}
        for held_group, path in self.order:
            if held_group == group and path:
                children.setdefault(path[:-1], []).append(path)
        shown = self._node(group, (), children)
        return shown[0] if shown is not None and isinstance(shown[0], dict) else {}

    def _node(self, group: str, path: Path, children: dict[Path, list[Path]]) -> tuple[Any, int, str] | None:
        """(value, fullness, rank) of what the body shows at ``path``; None for nothing."""
        options: list[tuple[int, str, int, Any]] = []
        leaf = self.leaves.get((group, path))
        if leaf is not None and not leaf.dropped:
            options.append((leaf.fullness, leaf.rank, 0, leaf.value))
        for kind in (OBJECT, LIST):
            rank = self.containers.get((group, path, kind))
            if rank is None:
                continue
            inner = [child for child in children.get(path, []) if (child[-1][0] == "k") == (kind == OBJECT)]
            inner.sort(key=lambda child: (self.order[(group, child)][0], -self.order[(group, child)][2]), reverse=True)
            total = 0
            value: dict[str, Any] | list[Any] = {} if kind == OBJECT else []
            for child in inner:
                shown = self._node(group, child, children)
                if shown is None:
                    continue
                total += shown[1]
                if isinstance(value, dict):
                    value[child[-1][1]] = shown[0]
                else:
                    value.append(shown[0])
            options.append((total, rank, 1 if kind == OBJECT else 2, value))
        if not options:
            return None
        full, rank, _, value = max(options, key=lambda option: option[:3])
        return value, full, rank

    def named_links(self, kind: str, body: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        """The item's recordings: the links of the body shown, named as a body's are
        (:func:`.recording_links.recording_links`), then every other link a copy had,
        named ``<name>-<id>`` (stable: a function of the link)."""
        named = list(recording_links(kind, body))
        seen = {link for _, link in named}
        others = sorted(
            ((name, link, rank) for link, (name, rank) in self.links.items() if link not in seen),
            key=lambda entry: (entry[2], entry[1]),
            reverse=True,
        )
        named += [(f"{name}-{link_id(link)[:8]}", link) for name, link, _ in others]
        return tuple(named[:MAX_LINKS])

    def summary_values(self) -> dict[str, Any]:
        return {name: self.summary[name][1] for name in SUMMARY_FIELDS if name in self.summary}

    # -- bounded --------------------------------------------------------------------

    def trim(self, budget: int | None = None) -> list[tuple[str, Path, str]]:
        """Leave out of the body the leaves of the lowest standing past ``budget``.
        Returns the (group, path, rank) of left-out leaves that the threshold now keeps
        (their value is gone from the state: the caller reads it back from that copy's
        version and calls :meth:`restore`)."""
        budget = LEAF_BUDGET if budget is None else budget
        self._forget(budget * STRUCTURE_BUDGET // LEAF_BUDGET)
        ordered = sorted(self.leaves.items(), key=lambda pair: (pair[1].standing, _path_text(pair[0][1])), reverse=True)
        total, over, wanted = 0, False, []
        for key, leaf in ordered:
            total += leaf.size
            over = over or total > budget
            if over:
                leaf.dropped, leaf.value = True, None
            elif leaf.dropped:
                wanted.append((key[0], key[1], leaf.rank))
        return wanted

    def _forget(self, budget: int) -> None:
        """Forget the paths of the lowest standing past ``budget`` bytes of structure.
        A path stands as the best leaf at or under it (so a container never goes before
        what it holds), a path without values as its best copy's rank; ties by path."""
        best: dict[tuple[str, Path], tuple[int, int, str]] = {}
        for (group, path), (rank, _, _) in self.order.items():
            best[(group, path)] = max(best.get((group, path), (0, 0, "")), (0, 0, rank))
        for (group, path), leaf in self.leaves.items():
            for length in range(len(path) + 1):
                key = (group, path[:length])
                if leaf.standing > best.get(key, (0, 0, "")):
                    best[key] = leaf.standing
        texts = {key: _path_text(key[1]) for key in best}
        total = 0
        ranks: set[str] = set()
        gone: set[tuple[str, Path]] = set()
        for key in sorted(best, key=lambda key: (best[key], key[0], texts[key]), reverse=True):
            # Its path twice (the key order and the container or value), each rank once.
            total += 2 * len(texts[key]) + _NODE_CHARGE
            for rank in (best[key][2], self.order.get(key, ("", (0, ""), 0))[0]):
                if rank not in ranks:
                    ranks.add(rank)
                    total += _RANK_CHARGE
            if total > budget:
                gone.add(key)
        if not gone:
            return
        self.forgotten = True
        for key in gone:
            self.order.pop(key, None)
            self.leaves.pop(key, None)
        self.containers = {key: rank for key, rank in self.containers.items() if (key[0], key[1]) not in gone}

    def restore(self, group: str, path: Path, value: Any) -> None:
        leaf = self.leaves[(group, path)]
        leaf.value, leaf.dropped = value, False

    @property
    def dropped(self) -> int:
        return sum(1 for leaf in self.leaves.values() if leaf.dropped)


# The ``callSummary`` of a record (:func:`.mapping.call_summary`): the call by meaning
# but its numbers and binding ids, which are the item's lookups.
_CALL_FIELDS = ("outcome", "startUtc", "ringUtc", "answerUtc", "endUtc", "durationSec", "recordingUrl", "hangupBy")
_CALL_FIELDS_OPTIONAL = ("hangupCause", "direction")


def call_summary(call: dict[str, Any]) -> dict[str, Any]:
    """The ``callSummary`` of a join's call by meaning (:meth:`State.summary_values`)."""
    summary = {name: call[name] for name in (*_CALL_FIELDS, *_CALL_FIELDS_OPTIONAL) if name in call}
    summary.setdefault("outcome", "unknown")
    summary.setdefault("hangupBy", "unknown")
    return summary


def _under(loc: Loc, unreadable: frozenset[Loc]) -> bool:
    return any(loc[:length] in unreadable for length in range(1, len(loc) + 1))


def _path_text(path: Path) -> str:
    return nxjson.dumps([[kind, part] for kind, part in path], ensure_ascii=True)


def _leaf_size(path: Path, value: Any) -> int:
    return 2 * len(_path_text(path)) + len(nxjson.dumps(value, ensure_ascii=True)) + _RANK_CHARGE


def _entries(values: list[Any]) -> list[Segment]:
    """How a list's entries are told apart: by ``uuid`` when each is an object with a
    distinct one, else by position."""
    uuids = [value.get("uuid") if isinstance(value, dict) else None for value in values]
    if values and all(isinstance(uuid, str) and uuid.strip() for uuid in uuids) and len(set(uuids)) == len(uuids):
        return [("u", uuid) for uuid in uuids]
    return [("i", position) for position in range(len(values))]


def _walk(payload: dict[str, Any]) -> Iterator[tuple[Path, Loc, str, Any, int]]:
    """(path, location in the payload, OBJECT/LIST/"leaf", value, position in its
    parent) of every node of a payload. Iterative."""
    pending: list[tuple[Path, Loc, Any, int]] = [((), (), payload, 0)]
    while pending:
        path, loc, value, position = pending.pop()
        depth = len(path)
        if isinstance(value, dict) and not isinstance(value, nxjson.DuplicateKeys) and depth < MAX_DEPTH:
            yield path, loc, OBJECT, None, position
            for index, (name, inner) in enumerate(value.items()):
                pending.append(((*path, ("k", name)), (*loc, name), inner, index))
        elif isinstance(value, list) and any(isinstance(inner, dict) for inner in value) and depth < MAX_DEPTH:
            yield path, loc, LIST, None, position
            for index, (segment, inner) in enumerate(zip(_entries(value), value, strict=True)):
                pending.append(((*path, segment), (*loc, index), inner, index))
        else:
            yield path, loc, "leaf", value, position


def join(copies: Iterable[Copy], state: State | None = None) -> State:
    joined = state if state is not None else State()
    for copy in copies:
        joined.add(copy)
    return joined


# -- stored form ------------------------------------------------------------------------

# 2: the key order remembers which text of a copy it came from (format 1 did not).
_FORMAT = 2


def encode(state: State, *, with_last_seen: bool = True) -> bytes:
    """The state as stored on the item: compact JSON (ranks listed once), compressed.
    Deterministic: two equal states encode alike."""
    ranks = sorted(
        {leaf.rank for leaf in state.leaves.values()}
        | set(state.containers.values())
        | {rank for rank, _, _ in state.order.values()}
        | set(state.groups.values())
        | {key[1] for key, _ in state.summary.values()}
        | {rank for _, rank in state.links.values()}
    )
    index = {rank: number for number, rank in enumerate(ranks)}
    texts = sorted({text for _, text, _ in state.order.values()})
    text_index = {text: number for number, text in enumerate(texts)}

    def path_of(path: Path) -> list[list[Any]]:
        return [[kind, part] for kind, part in path]

    document: dict[str, Any] = {
        "v": _FORMAT,
        "r": ranks,
        "g": sorted([group, index[rank]] for group, rank in state.groups.items()),
        "L": sorted(
            (
                [group, path_of(path), leaf.tier, leaf.fullness, index[leaf.rank], leaf.size, 1]
                if leaf.dropped
                else [group, path_of(path), leaf.tier, leaf.fullness, index[leaf.rank], leaf.size, 0, leaf.value]
                for (group, path), leaf in state.leaves.items()
            ),
            key=lambda entry: (entry[0], _path_text(tuple((k, p) for k, p in entry[1]))),
        ),
        "C": sorted(
            ([group, path_of(path), kind, index[rank]] for (group, path, kind), rank in state.containers.items()),
            key=lambda entry: (entry[0], _path_text(tuple((k, p) for k, p in entry[1])), entry[2]),
        ),
        "x": [list(text) for text in texts],
        "O": sorted(
            (
                [group, path_of(path), index[rank], position, text_index[text]]
                for (group, path), (rank, text, position) in state.order.items()
            ),
            key=lambda entry: (entry[0], _path_text(tuple((k, p) for k, p in entry[1]))),
        ),
        "s": {name: [key[0], index[key[1]], value] for name, (key, value) in sorted(state.summary.items())},
        "l": sorted([link, name, index[rank]] for link, (name, rank) in state.links.items()),
        "src": sorted(state.sources),
        "f": list(state.first),
        "t": state.last_seen if with_last_seen else "",
    }
    if state.forgotten:
        document["F"] = 1
    return zlib.compress(nxjson.dumps(document, ensure_ascii=True).encode("ascii"), 6)


def decode(blob: bytes) -> State:
    document = nxjson.loads(zlib.decompress(bytes(blob)).decode("ascii"), duplicates="keep", constants=True)
    if document.get("v") not in (1, _FORMAT):
        raise ValueError(f"merge state of format {document.get('v')!r}, not {_FORMAT}")
    ranks: list[str] = document["r"]

    def path_of(parts: list[list[Any]]) -> Path:
        return tuple((str(kind), part) for kind, part in parts)

    state = State()
    state.groups = {group: ranks[rank] for group, rank in document["g"]}
    for entry in document["L"]:
        group, parts, tier, full, rank, size, dropped = entry[:7]
        value = None if dropped else entry[7]
        state.leaves[(group, path_of(parts))] = Leaf(tier, full, ranks[rank], size, value, bool(dropped))
    for group, parts, kind, rank in document["C"]:
        state.containers[(group, path_of(parts), kind)] = ranks[rank]
    texts = [(int(length), str(digest)) for length, digest in document.get("x", [])]
    for group, parts, rank, position, *text in document["O"]:
        # Format 1 kept no text: its entries stand as the first text of their rank.
        state.order[(group, path_of(parts))] = (ranks[rank], texts[text[0]] if text else (0, ""), position)
    state.summary = {name: ((special, ranks[rank]), value) for name, (special, rank, value) in document["s"].items()}
    state.links = {link: (name, ranks[rank]) for link, name, rank in document["l"]}
    state.sources = set(document["src"])
    state.first = (document["f"][0], document["f"][1])
    state.last_seen = document["t"]
    state.forgotten = bool(document.get("F"))
    return state


def leaf_at(payload: dict[str, Any], path: Path) -> Any:
    """The value at ``path`` in a copy's payload (for :meth:`State.restore`)."""
    for found, _, kind, value, _ in _walk(payload):
        if found == path and kind not in (OBJECT, LIST):
            return value
    raise KeyError(path)
