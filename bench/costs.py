"""Rows 5 and 6: what the build weighs, and what a million pushes cost.

Prices: AWS list prices for us-east-1 (x86_64, Standard classes, first pricing tier),
as published on the AWS pricing pages in 2025 (DynamoDB on-demand after its
1 November 2024 reduction). They are constants here: check them before quoting a
figure. A GB is 2^30 bytes, as AWS bills it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from bench.build import tree_bytes
from bench.report import Row, at_most, ratio
from bench.session import Session

PRICES_AS_OF = "AWS list prices, us-east-1, as published in 2025"
API_GATEWAY_HTTP_PER_MILLION = 1.00  # HTTP API requests, first 300 million a month
LAMBDA_REQUESTS_PER_MILLION = 0.20
LAMBDA_GB_SECOND = 0.0000166667  # x86_64, first 6 billion GB-s a month
DYNAMODB_WRITE_UNITS_PER_MILLION = 0.625  # on-demand write request units, Standard table class
LOGS_INGESTION_PER_GB = 0.50  # CloudWatch Logs, Standard log class
GB = 2**30
MB = 2**20
TB = 2**40
# The change publisher's bus and lake (row 9). Checked against the pricing pages' text
# where the bench's search found it: EventBridge bills each 64 KB chunk of an entry as
# one event; Firehose rounds each record up to 5 KB for ingestion and for format
# conversion, and bills dynamic partitioning per GB delivered and per object; Athena
# bills at least 10 MB a query.
EVENTBRIDGE_CUSTOM_EVENTS_PER_MILLION = 1.00  # custom events put on a bus
EVENTBRIDGE_CHUNK_BYTES = 64 * 1024
FIREHOSE_INGESTION_PER_GB = 0.029  # Direct PUT, first 500 TB a month
FIREHOSE_RECORD_INCREMENT = 5 * 1024
FIREHOSE_CONVERSION_PER_GB = 0.018  # JSON to Parquet, on the ingested GB (5 KB increments)
FIREHOSE_PARTITIONING_PER_GB = 0.020  # dynamic partitioning, per GB delivered
FIREHOSE_PARTITIONING_PER_THOUSAND_OBJECTS = 0.005
S3_PUT_PER_THOUSAND = 0.005  # S3 Standard PUT, COPY, POST, LIST requests
S3_STANDARD_GB_MONTH = 0.023  # S3 Standard, first 50 TB a month
ATHENA_PER_TB_SCANNED = 5.00
ATHENA_MINIMUM_BYTES = 10 * MB
LAYER_TARGET_MB = 16
PNS_COST_TARGET = 4.5
# Not measured (Lambda writes them, not the handler): START, END and REPORT lines.
PLATFORM_LOG_BYTES = 300


def size_rows(session: Session) -> list[Row]:
    rows = []
    build = session.build
    for layer in build.layers.values():
        with_pyc = tree_bytes(layer.path) / MB
        without = tree_bytes(layer.path, with_bytecode=False) / MB
        rows.append(
            Row(
                "5",
                f"layer {layer.name} unzipped, vs without .pyc",
                with_pyc,
                "MB",
                baseline=without,
                ratio=ratio(with_pyc, without),
                target=f"<={LAYER_TARGET_MB} MB",
                meets=at_most(LAYER_TARGET_MB)(with_pyc),
            )
        )
    totals = []
    for function in build.functions.values():
        code = tree_bytes(function.code_dir)
        loaded = (code + sum(tree_bytes(layer.path) for layer in function.layers)) / MB
        rows.append(Row("5", f"function {function.name} code unzipped", code, "B", detail={"with_layers_mb": loaded}))
        totals.append(f"{function.name} {loaded:.1f} MB ({' + '.join(layer.name for layer in function.layers)})")
    session.note(
        "5  unzipped = the sum of the files' sizes in the build dir (MB = 2^20 bytes); with its layers, what "
        "Lambda unpacks for each function (limit 250 MB): " + "; ".join(totals)
    )
    return rows


def cost_rows(session: Session) -> list[Row]:
    warm: dict[str, Any] = session.shared.get("warm", {})
    units: dict[str, Any] = session.shared.get("units", {})
    rows = []
    floor = API_GATEWAY_HTTP_PER_MILLION + LAMBDA_REQUESTS_PER_MILLION
    lines = [
        f"6  cost per million pushes, {PRICES_AS_OF}: API Gateway HTTP API ${API_GATEWAY_HTTP_PER_MILLION:.2f}/M "
        f"requests; Lambda ${LAMBDA_REQUESTS_PER_MILLION:.2f}/M requests + ${LAMBDA_GB_SECOND:.10f}/GB-s (x86_64) x "
        f"MemorySize x billed duration (the warm push median of row 2, rounded up to 1 ms: local-machine time, "
        f"not Lambda's); DynamoDB on-demand ${DYNAMODB_WRITE_UNITS_PER_MILLION}/M write request units x the WCU "
        f"of a new record (row 3); CloudWatch Logs ${LOGS_INGESTION_PER_GB:.2f}/GB ingested x the handler's stdout "
        f"per push (row 6, GB = 2^30 B). Baseline: the requests alone (${floor:.2f}). Not included: Lambda's "
        f"START/END/REPORT lines (~{PLATFORM_LOG_BYTES} B a push: "
        f"${LOGS_INGESTION_PER_GB * PLATFORM_LOG_BYTES * 1e6 / GB:.2f}/M), reads of duplicates, custom metrics "
        "(billed per metric a month, not per push), Secrets Manager (a read per container per 5 min), data transfer."
    ]
    lean_units: dict[str, Any] = session.shared.get("units_lean", {})
    configurations = [("", units), (", lookups off", lean_units)]
    for (label, units), (kind, function) in itertools.product(configurations, session.push.items()):
        if kind not in warm or kind not in units:
            continue
        memory_gb = function.memory_mb / 1024
        billed_ms = math.ceil(float(warm[kind]["push_median_ms"]))
        lambda_duration = LAMBDA_GB_SECOND * memory_gb * billed_ms / 1000 * 1e6
        measured = units[kind]["new"]["measured"].get("total")
        wcu = float(measured if measured is not None else units[kind]["new"]["computed"]["total"])
        dynamodb = DYNAMODB_WRITE_UNITS_PER_MILLION * wcu
        log_bytes = float(warm[kind]["log_bytes_mean"])
        logs = LOGS_INGESTION_PER_GB * log_bytes * 1e6 / GB
        total = floor + lambda_duration + dynamodb + logs
        target = PNS_COST_TARGET if kind == "pns_call_result" else None
        rows.append(
            Row(
                "6",
                f"cost per million pushes {kind}{label}",
                total,
                "$",
                baseline=floor,
                ratio=ratio(total, floor),
                target=f"<=${target}" if target else "-",
                meets=at_most(target)(total) if target else None,
                detail={"lambda_duration": lambda_duration, "dynamodb": dynamodb, "logs": logs},
            )
        )
        lines.append(
            f"6  {kind}{label}: ${API_GATEWAY_HTTP_PER_MILLION:.2f} API"
            f" + ${LAMBDA_REQUESTS_PER_MILLION:.2f} Lambda requests"
            f" + {LAMBDA_GB_SECOND:.10f} x {memory_gb:g} GB x {billed_ms} ms x 1e6 = ${lambda_duration:.3f}"
            f" + {DYNAMODB_WRITE_UNITS_PER_MILLION} x {wcu:g} WCU = ${dynamodb:.3f}"
            f" + {LOGS_INGESTION_PER_GB} x {log_bytes:.0f} B x 1e6 / 2^30 = ${logs:.3f}"
            f"  => ${total:.3f} per million"
        )
    session.notes.extend(lines)
    return [*session.shared.get("log_rows", []), *rows]
