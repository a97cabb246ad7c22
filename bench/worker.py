"""Measurements made inside one push function's process, in the development
virtualenv with the layer's source on the path (``layers/shared``) and the function's
source directory as its code. One kind per process; run by :mod:`bench.run`:

    python -m bench.worker CONFIG.json RESULT.json

``warm`` (row 2, and the log bytes of row 6): N pushes through ``app.handler`` (new
records) interleaved with N bare ``PutItem`` calls, through a plain boto3 client, of the
item the writer would store (``build_item`` of the mapped record, serialised as boto3
serialises it, same ``attribute_not_exists(pk)`` condition); per-operation latency, and
the bytes each push writes to stdout (Powertools' log lines and EMF metrics: what
CloudWatch Logs ingests). This process's stdout must be a file.

``units`` (row 3): a new record, the same push again and a body that is not JSON, each
with every DynamoDB call of the function asked for its ``ConsumedCapacity``
(``ReturnConsumedCapacity=INDEXES``, added by a botocore hook on every client the
function makes), beside the write units computed from the items written (read back).
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from boto3.dynamodb.types import TypeSerializer

from bench import dynamo
from bench.events import (
    LambdaContext,
    PushSample,
    body_text,
    deployed_name,
    lambda_context,
    map_record,
    zone_of,
)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def log(message: str) -> None:
    print(f"    [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Calls:
    """Every DynamoDB call the function's clients make while ``recording``: operation,
    parameters, consumed capacity, error code. Installed by wrapping botocore's
    ``Session.create_client`` (boto3's clients are made there too), so it sees the
    clients the layer makes whichever session it uses."""

    def __init__(self, *, ask_capacity: bool) -> None:
        self.ask_capacity = ask_capacity
        self.recording = False
        self.calls: list[dict[str, Any]] = []
        self.clients = 0

    def install(self) -> None:
        original = botocore.session.Session.create_client
        calls = self

        def create_client(session: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            if client.meta.service_model.service_name == "dynamodb":
                client.meta.events.register("provide-client-params.dynamodb", calls.before)
                client.meta.events.register("after-call.dynamodb", calls.after)
                calls.clients += 1
            return client

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign,assignment]

    def before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self.recording:
            return
        if self.ask_capacity and "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "INDEXES")
        context["bench_params"] = copy.deepcopy(params)

    def after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self.recording:
            return
        capacity = parsed.get("ConsumedCapacity")
        self.calls.append(
            {
                "operation": model.name,
                "params": context.get("bench_params", {}),
                "capacity": capacity if isinstance(capacity, list) else [capacity] if capacity else [],
                "error": (parsed.get("Error") or {}).get("Code"),
            }
        )

    def take(self) -> list[dict[str, Any]]:
        taken, self.calls = self.calls, []
        return taken


def load_handler(config: dict[str, Any]) -> Handler:
    sys.path.insert(0, config["code_dir"])
    module = importlib.import_module(config["handler"].rsplit(".", 1)[0])
    handler: Handler = getattr(module, config["handler"].rsplit(".", 1)[1])
    return handler


def context_for(config: dict[str, Any], name: str) -> LambdaContext:
    return lambda_context(name, int(config["memory_mb"]), int(config["timeout_s"]))


def build_bare_item(kind: str, event: dict[str, Any], zone: Any, retention_days: int) -> dict[str, Any]:
    """The item the writer would store for this push, in DynamoDB's typed JSON."""
    from nxcloud_cdr.write_rule import build_item  # noqa: PLC0415 - the layer, after the environment is set

    text = body_text(event)
    record = map_record(kind, json.loads(text), text, zone)
    item = build_item(record, datetime.now(UTC), source="push", retention_days=retention_days)
    serializer = TypeSerializer()
    return {name: serializer.serialize(value) for name, value in item.items()}


def shape(item: dict[str, Any]) -> dict[str, str]:
    return {name: next(iter(value)) for name, value in item.items()}


def compare_items(kind: str, written: list[dict[str, Any]], mine: dict[str, Any]) -> list[str]:
    """Whether the bare item is what the writer sent for the same body (its receivedAt aside)."""
    if not written:
        return [f"{kind}: the function made no PutItem seen by the bench (the bare item is not checked)"]
    if shape(written[0]) != shape(mine) or dynamo.item_size(written[0]) != dynamo.item_size(mine):
        return [
            f"{kind}: the bare item differs from the writer's PutItem "
            f"({dynamo.item_size(mine)} vs {dynamo.item_size(written[0])} bytes; "
            f"attributes only in one: {sorted(set(shape(mine)) ^ set(shape(written[0])))})"
        ]
    return []


def answer_of(response: dict[str, Any]) -> dict[str, Any]:
    try:
        body: dict[str, Any] = json.loads(response.get("body") or "{}")
    except ValueError:
        body = {}
    return body


# -- warm -------------------------------------------------------------------------------


def interleave(
    push: Callable[[dict[str, Any]], tuple[float, dict[str, Any]]],
    put: Callable[[dict[str, Any]], float],
    pushes: list[dict[str, Any]],
    items: list[dict[str, Any]],
    kind: str,
) -> dict[str, Any]:
    """Each push beside a bare put, in alternating order; the stdout bytes of each push."""
    push_ms: list[float] = []
    put_ms: list[float] = []
    log_bytes: list[int] = []
    outcomes: dict[str, int] = {}
    sys.stdout.flush()
    position = os.fstat(1).st_size
    for index, (event, item) in enumerate(zip(pushes, items, strict=True)):
        if index % 2:
            elapsed, response = push(event)
            put_ms.append(put(item))
        else:
            put_ms.append(put(item))
            elapsed, response = push(event)
        push_ms.append(elapsed)
        sys.stdout.flush()
        size = os.fstat(1).st_size
        log_bytes.append(size - position)
        position = size
        outcome = str(answer_of(response).get("outcome", response.get("statusCode")))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if response.get("statusCode") != 200:
            raise RuntimeError(f"push answered {response.get('statusCode')}: {response.get('body')}")
        if (index + 1) % 100 == 0:
            log(f"{kind}: {index + 1}/{len(pushes)}")
    try:  # what the last push printed (stdout is a file opened for reading too)
        sample = os.pread(1, log_bytes[-1], position - log_bytes[-1]).decode("utf-8", "replace")
    except OSError:
        sample = ""
    return {
        "log_sample": sample,
        "push_ms": push_ms,
        "put_ms": put_ms,
        "push_median_ms": statistics.median(push_ms),
        "put_median_ms": statistics.median(put_ms),
        "log_bytes": log_bytes,
        "log_bytes_mean": statistics.fmean(log_bytes),
        "outcomes": outcomes,
    }


def warm(config: dict[str, Any]) -> dict[str, Any]:
    kind = config["kind"]
    bare = boto3.session.Session().client("dynamodb")  # made before the hooks: a plain client
    calls = Calls(ask_capacity=False)
    calls.install()
    handler = load_handler(config)
    zone = zone_of(os.environ.get("NXCLOUD_TIMEZONE", "+08:00"))
    retention = int(os.environ.get("RETENTION_DAYS", "0") or 0)
    sample = PushSample.load(kind, zone)
    table = config["records_table"]
    count, warmup = int(config["n"]), int(config["warmup"])
    name = deployed_name(config["function"])

    pushes = [sample.fresh()[0] for _ in range(count + warmup)]
    items = [build_bare_item(kind, sample.fresh()[0], zone, retention) for _ in range(count + warmup)]

    def push(event: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        context = context_for(config, name)
        start = time.perf_counter()
        response = handler(event, context)
        return (time.perf_counter() - start) * 1000, response

    def put(item: dict[str, Any]) -> float:
        start = time.perf_counter()
        bare.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        return (time.perf_counter() - start) * 1000

    # Warm-up; the first push's PutItem is compared with the bare item for the same body.
    calls.recording = True
    _, response = push(pushes[0])
    calls.recording = False
    if response.get("statusCode") != 200:
        raise RuntimeError(f"warm-up push answered {response.get('statusCode')}: {response.get('body')}")
    written = [call["params"].get("Item") for call in calls.take() if call["operation"] == "PutItem"]
    notes = compare_items(kind, written, build_bare_item(kind, pushes[0], zone, retention))
    for index in range(1, warmup):
        push(pushes[index])
        put(items[index])

    measured = interleave(push, put, pushes[warmup:], items[warmup:], kind)
    return {
        "kind": kind,
        **measured,
        "bare_item_bytes": dynamo.item_size(items[-1]),
        "log_level": os.environ.get("POWERTOOLS_LOG_LEVEL", ""),
        "clients_seen": calls.clients,
        "notes": notes,
    }


# -- units ------------------------------------------------------------------------------


def _capacity(calls: list[dict[str, Any]], operations: set[str]) -> dict[str, float]:
    """Consumed capacity reported for ``operations``: total, table and each index."""
    total: dict[str, float] = {}
    for call in calls:
        if call["operation"] not in operations:
            continue
        for entry in call["capacity"]:
            total["total"] = total.get("total", 0.0) + float(entry.get("CapacityUnits", 0))
            if "Table" in entry:
                total["Table"] = total.get("Table", 0.0) + float(entry["Table"].get("CapacityUnits", 0))
            for index, value in (entry.get("GlobalSecondaryIndexes") or {}).items():
                total[index] = total.get(index, 0.0) + float(value.get("CapacityUnits", 0))
    return total


class Tables:
    """The function's tables, read back whole after each push (they hold a few items)."""

    def __init__(self, client: Any, names: dict[str, str], schemas: dict[str, dynamo.TableSchema]) -> None:
        self.client = client
        self.names = names
        self.schemas = schemas

    def snapshot(self) -> dict[str, dict[tuple[str, ...], dict[str, Any]]]:
        return {
            logical: {self.schemas[logical].key_of(item): item for item in dynamo.scan(self.client, name)}
            for logical, name in self.names.items()
        }

    def logical_of(self, table_name: str) -> str | None:
        return next((logical for logical, name in self.names.items() if name == table_name), None)


def _computed(
    tables: Tables,
    before: dict[str, dict[tuple[str, ...], dict[str, Any]]],
    after: dict[str, dict[tuple[str, ...], dict[str, Any]]],
    calls: list[dict[str, Any]],
) -> dict[str, Any]:
    """Write units by DynamoDB's rules: each item written (new: table and indexes;
    changed: the larger of the two copies, and the indexes it is in), and each
    conditional write that failed (the larger of the stored item and the one sent)."""
    per_part: dict[str, int] = {}
    items: list[dict[str, Any]] = []
    for logical, schema in tables.schemas.items():
        for key, item in after[logical].items():
            old = before[logical].get(key)
            if old == item:
                continue
            items.append({"table": logical, "bytes": dynamo.item_size(item), "new": old is None})
            cost = schema.new_item_units(item)
            if old is not None:
                cost["Table"] = dynamo.units(max(dynamo.item_size(old), dynamo.item_size(item)))
            for name, value in cost.items():
                per_part[name] = per_part.get(name, 0) + value
    failed = 0
    for call in calls:
        if call["error"] != "ConditionalCheckFailedException":
            continue
        params = call["params"]
        table = tables.logical_of(str(params.get("TableName")))
        if table is None:
            continue
        schema = tables.schemas[table]
        sent = params.get("Item") or params.get("Key") or {}
        stored = before[table].get(schema.key_of(sent)) or {}
        failed_units = dynamo.units(max(dynamo.item_size(sent), dynamo.item_size(stored)))
        per_part["Table"] = per_part.get("Table", 0) + failed_units
        failed += failed_units
    return {"units": per_part, "total": sum(per_part.values()), "failed_conditional": failed, "items": items}


def write_units(config: dict[str, Any]) -> dict[str, Any]:
    kind = config["kind"]
    names: dict[str, str] = config["tables"]
    client = boto3.session.Session().client("dynamodb")
    tables = Tables(client, names, dynamo.schemas(client, names))
    calls = Calls(ask_capacity=True)
    calls.install()
    handler = load_handler(config)
    zone = zone_of(os.environ.get("NXCLOUD_TIMEZONE", "+08:00"))
    sample = PushSample.load(kind, zone)
    name = deployed_name(config["function"])
    from bench.events import bad_body_event  # noqa: PLC0415

    new_event, _ = sample.fresh()
    duplicate_event = copy.deepcopy(new_event)
    rejected_event = bad_body_event(kind)
    results: dict[str, Any] = {"kind": kind, "body_bytes": len(body_text(new_event).encode("utf-8"))}
    for case, event in (("new", new_event), ("duplicate", duplicate_event), ("rejected", rejected_event)):
        before = tables.snapshot()
        calls.recording = True
        response = handler(event, context_for(config, name))
        calls.recording = False
        taken = calls.take()
        after = tables.snapshot()
        writes = [call for call in taken if call["operation"] in WRITE_OPERATIONS]
        results[case] = {
            "status": response.get("statusCode"),
            "answer": answer_of(response),
            "operations": [f"{call['operation']}{' ' + call['error'] if call['error'] else ''}" for call in taken],
            "measured": _capacity(taken, WRITE_OPERATIONS),
            "measured_reads": _capacity(taken, {call["operation"] for call in taken} - WRITE_OPERATIONS),
            "writes_reported": sum(1 for call in writes if call["capacity"]),
            "writes": len(writes),
            "computed": _computed(tables, before, after, taken),
        }
        log(f"{kind} {case}: {response.get('statusCode')} {results[case]['operations']}")
    new_items = [item for item in results["new"]["computed"]["items"] if item["new"]]
    results["item_bytes"] = max((item["bytes"] for item in new_items), default=None)
    results["clients_seen"] = calls.clients
    return results


# -- copies of one call ------------------------------------------------------------------


def copies(config: dict[str, Any]) -> dict[str, Any]:
    """``config["copies"]`` distinct copies of one call pushed one after another, each
    with another value in one unknown field (as NXCLOUD's corrections differ: a new
    copy to keep as a version and to join, which does not add to what the item
    shows): each push's time in the handler, its write and read units as DynamoDB
    Local reports them, and its calls."""
    kind = config["kind"]
    calls = Calls(ask_capacity=True)
    calls.install()
    handler = load_handler(config)
    zone = zone_of(os.environ.get("NXCLOUD_TIMEZONE", "+08:00"))
    event, _ = PushSample.load(kind, zone).fresh()
    body = json.loads(body_text(event))
    name = deployed_name(config["function"])
    per_copy: list[dict[str, Any]] = []
    for number in range(int(config["copies"])):
        pushed = copy.deepcopy(event)
        pushed["body"] = json.dumps(body | {"benchCorrection": f"copy {number}"})
        calls.recording = True
        start = time.perf_counter()
        response = handler(pushed, context_for(config, name))
        elapsed_ms = (time.perf_counter() - start) * 1000
        calls.recording = False
        taken = calls.take()
        if response.get("statusCode") != 200:
            raise RuntimeError(f"copy {number} answered {response.get('statusCode')}: {response.get('body')}")
        operations = {call["operation"] for call in taken}
        per_copy.append(
            {
                "ms": elapsed_ms,
                "wcu": _capacity(taken, WRITE_OPERATIONS).get("total", 0.0),
                "rcu": _capacity(taken, operations - WRITE_OPERATIONS).get("total", 0.0),
                "calls": len(taken),
                "outcome": answer_of(response).get("outcome"),
            }
        )
    return {"kind": kind, "per_copy": per_copy}


MODES = {"warm": warm, "units": write_units, "copies": copies}


def main() -> None:
    config: dict[str, Any] = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    os.environ.update(config["environment"])
    result = MODES[config["mode"]](config)
    Path(sys.argv[2]).write_text(json.dumps(result, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
