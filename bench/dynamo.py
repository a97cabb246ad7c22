"""DynamoDB item sizes and write units by DynamoDB's published rules, and the bench's
tables on DynamoDB Local.

Sizes are computed on items in DynamoDB's typed JSON (``{"S": ...}``) as the low-level
client sends and returns them:

* an item is the sum, over its attributes, of the UTF-8 length of the name and the
  size of the value;
* S: UTF-8 bytes; B: bytes; N: 1 byte per two significant digits, plus 1 (plus 1 when
  negative); BOOL, NULL: 1; SS/NS/BS: the sum of their elements;
* L and M: 3 bytes, plus 1 byte per element, plus each element (and, in a map, the
  UTF-8 length of each key).

A write of a new item costs ``ceil(size / 1 KB)`` on the table and, for each global
secondary index whose key attributes the item has, ``ceil(entry / 1 KB)`` where the
entry is the index keys, the table keys and the projected attributes, plus 100 bytes.
A conditional write that fails costs ``ceil(max(old, new) / 1 KB)`` on the table.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from devtools.template import create_tables

KB = 1024
INDEX_ENTRY_OVERHEAD = 100


def number_size(text: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return len(text)
    sign, digits, _ = value.as_tuple()
    significant = "".join(str(d) for d in digits).strip("0") or "0"
    return math.ceil(len(significant) / 2) + 1 + (1 if sign else 0)


def value_size(value: dict[str, Any]) -> int:
    [(kind, inner)] = value.items()
    if kind == "S":
        return len(str(inner).encode("utf-8", "surrogatepass"))
    if kind == "B":
        return len(inner)
    if kind == "N":
        return number_size(str(inner))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(element).encode("utf-8", "surrogatepass")) for element in inner)
    if kind == "NS":
        return sum(number_size(str(element)) for element in inner)
    if kind == "BS":
        return sum(len(element) for element in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in inner)
    if kind == "M":
        return 3 + sum(1 + len(name.encode("utf-8")) + value_size(element) for name, element in inner.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def units(size: int) -> int:
    return max(1, math.ceil(size / KB))


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSchema:
    logical_id: str
    keys: tuple[str, ...]
    indexes: tuple[Index, ...]

    @classmethod
    def describe(cls, client: Any, logical_id: str, table_name: str) -> TableSchema:
        """The table as DynamoDB has it (the template's optional indexes decided)."""
        table = client.describe_table(TableName=table_name)["Table"]
        indexes = []
        for gsi in table.get("GlobalSecondaryIndexes") or []:
            projection = gsi.get("Projection") or {}
            indexes.append(
                Index(
                    str(gsi["IndexName"]),
                    tuple(str(key["AttributeName"]) for key in gsi["KeySchema"]),
                    str(projection.get("ProjectionType", "KEYS_ONLY")),
                    tuple(str(name) for name in projection.get("NonKeyAttributes") or ()),
                )
            )
        keys = tuple(str(key["AttributeName"]) for key in table["KeySchema"])
        return cls(logical_id, keys, tuple(indexes))

    def key_of(self, item: dict[str, Any]) -> tuple[str, ...]:
        return tuple(repr(item.get(name)) for name in self.keys)

    def index_entry_size(self, index: Index, item: dict[str, Any]) -> int | None:
        """Size of the item's copy in ``index`` (with the 100-byte overhead), or None when
        the item is not in the index (a key attribute missing: a sparse index)."""
        if not all(key in item for key in index.keys):
            return None
        if index.projection == "ALL":
            names = set(item)
        else:
            names = {*index.keys, *self.keys, *(index.include if index.projection == "INCLUDE" else ())}
        return item_size({name: item[name] for name in names if name in item}) + INDEX_ENTRY_OVERHEAD

    def new_item_units(self, item: dict[str, Any]) -> dict[str, int]:
        """Write units of putting ``item`` as a new item: ``{"Table": n, "<index>": n, ...}``."""
        cost = {"Table": units(item_size(item))}
        for index in self.indexes:
            entry = self.index_entry_size(index, item)
            if entry is not None:
                cost[index.name] = units(entry)
        return cost


def schemas(client: Any, names: dict[str, str]) -> dict[str, TableSchema]:
    return {logical: TableSchema.describe(client, logical, name) for logical, name in names.items()}


def fresh_table_names(logical_ids: list[str], tag: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {logical: f"bench-{tag}-{logical}-{suffix}" for logical in logical_ids}


def create(
    client: Any, template: dict[str, Any], names: dict[str, str], parameters: dict[str, str] | None = None
) -> None:
    """The template's tables (keys, indexes, TTL) under ``names``."""
    create_tables(client, names, template, parameters)


def delete(client: Any, names: dict[str, str]) -> None:
    for name in names.values():
        with contextlib.suppress(Exception):  # best effort: DynamoDB Local is in memory and goes away
            client.delete_table(TableName=name)


def scan(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page.get("Items", []))
    return items
