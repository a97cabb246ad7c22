"""The baseline of the sync's throughput: a bare ``BatchWriteItem`` of the items the sync
stored, 25 at a time, one thread, unprocessed items sent again, through a plain boto3
client, in the same kind of interpreter as the sync's run.

``.venv-lambda/bin/python -s -P bench/probe_batch.py ITEMS.jsonl TABLE [MODE [LIMIT]]``
(the endpoint from ``AWS_ENDPOINT_URL_DYNAMODB``). MODE ``batch`` (the baseline), or,
for reference, ``put`` (one conditional ``PutItem`` per item, one thread) or ``put8``
(the same from 8 threads), or ``transact`` (100 to a ``TransactWriteItems`` of conditional
puts, as the sync writes new records). Prints ``@@BENCH@@ <json>``.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

MARKER = "@@BENCH@@"


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__b64__"}:
            return base64.b64decode(value["__b64__"])
        return {name: _decode(inner) for name, inner in value.items()}
    if isinstance(value, list):
        return [_decode(inner) for inner in value]
    return value


def batch(client: Any, table: str, items: list[dict[str, Any]]) -> int:
    requests = 0
    for first in range(0, len(items), 25):
        pending: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in items[first : first + 25]]}
        for attempt in range(10):
            response = client.batch_write_item(RequestItems=pending)
            requests += 1
            pending = dict(response.get("UnprocessedItems") or {})
            if not pending:
                break
            time.sleep(min(0.05 * 2**attempt, 1.0))
        else:
            raise SystemExit("BatchWriteItem left items unprocessed after 10 attempts")
    return requests


def transact(client: Any, table: str, items: list[dict[str, Any]]) -> int:
    """The same items 100 to a ``TransactWriteItems`` of conditional puts: the least a
    write that may not overwrite a callback's item costs in requests."""
    requests = 0
    for first in range(0, len(items), 100):
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}
                for item in items[first : first + 100]
            ]
        )
        requests += 1
    return requests


def put(client: Any, table: str, items: list[dict[str, Any]], threads: int) -> int:
    def one(item: dict[str, Any]) -> None:
        client.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")

    if threads == 1:
        for item in items:
            one(item)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(one, items))
    return len(items)


def main() -> None:
    path, table = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "batch"
    limit = int(sys.argv[4]) if len(sys.argv) > 4 else None
    with open(path, encoding="utf-8") as handle:
        items = [_decode(json.loads(line)) for line in handle if line.strip()][:limit]
    client = boto3.client("dynamodb")
    client.describe_table(TableName=table)  # connection made before the clock starts
    start = time.perf_counter()
    threads = 8 if mode == "put8" else 1
    if mode == "batch":
        requests = batch(client, table, items)
    elif mode == "transact":
        requests = transact(client, table, items)
    else:
        requests = put(client, table, items, threads)
    seconds = time.perf_counter() - start
    print(MARKER, json.dumps({"mode": mode, "items": len(items), "seconds": seconds, "requests": requests}), flush=True)


if __name__ == "__main__":
    main()
