"""``make bench`` (``python -m bench``): one table of the issue's figures, each beside its
baseline, measured side by side in one run (interleaved runs, medians).

1. cold start of each function as built vs the floor (a boto3-only Python 3.13 doing
   ``import boto3; boto3.client("dynamodb")``): the pushes, the scheduled functions and
   the change publisher (a stream batch of one new call, published to the loopback
   stand-in of EventBridge and Firehose); and each handler's import without its
   bytecode vs as built;
2. warm push vs a bare ``PutItem`` of the same item;
3. write units of a new record, a duplicate and a rejected body of each push kind,
   measured (DynamoDB Local's ``ConsumedCapacity``) vs computed from the item sizes;
   the stored item's size vs its body;
4. the sync's throughput vs a bare ``BatchWriteItem`` of the same items, and its peak
   memory at two sizes;
5. the unzipped size of each built layer (vs without bytecode) and each function;
6. log bytes per push, and the cost of a million pushes of each kind at list prices
   (the arithmetic is printed under the table);
7. the recording archiver: one recording archived vs a bare download and PutObject, its
   peak memory on a large recording, and the bytes a recording adds to its item;
8. a new distinct copy of one call: its time and write units when 1,000 are kept vs 10;
9. the change publisher warm, per change in a full stream batch and for a batch of one,
   vs bare ``PutEvents`` and ``PutRecordBatch`` of the same entries and rows; a lake
   row's bytes in Parquet vs as JSON; the cost of a million changes (vs the bus and the
   lake alone) and of a million calls, a month's storage of their Parquet and an Athena
   query over it, at list prices (the arithmetic is printed under the table).

Everything runs on loopback: DynamoDB Local on a port of its own, the stand-in NXCLOUD,
the stand-in EventBridge and Firehose (``devtools.lake_local.LocalLake``).
Progress goes to stderr, the table to stdout. Figures are printed, never judged: the
exit status is 0 unless the bench itself broke (a section that raised).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from bench import lambdas
from bench.build import Build, Function, read_build
from bench.report import Row, render, write_json
from bench.session import SCHEDULE_TYPES, Session, drain, log
from devtools import REPO_ROOT
from devtools.dynamodb_local import DynamoDBLocal

SECTIONS = ("size", "cold", "nopyc", "units", "warm", "sync", "cost", "recordings", "copies", "publisher")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=REPO_ROOT / ".aws-sam" / "build", help="sam build output")
    parser.add_argument("--runs", type=int, default=11, help="cold-start runs of each function and of the floor")
    parser.add_argument("--nopyc-runs", type=int, default=7, help="runs of the import without .pyc (0: none)")
    parser.add_argument("--warm-n", type=int, default=300, help="warm pushes (and bare PutItem) per kind")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up operations before the warm ones")
    parser.add_argument(
        "--sizes",
        type=lambda text: tuple(int(part) for part in text.split(",")),
        default=None,
        help="records of the sync: throughput size,memory size (default 10000,100000)",
    )
    parser.add_argument("--sync-rounds", type=int, default=None, help="sync/baseline rounds (default 3, quick 2)")
    parser.add_argument(
        "--engine-warmup", type=int, default=None, help="writes that warm each DynamoDB Local up (2500; quick 1000)"
    )
    parser.add_argument("--copies", type=int, default=1000, help="distinct copies of one call pushed (row 8)")
    parser.add_argument(
        "--publisher-rounds", type=int, default=None, help="warm publisher rounds, each batch once (40; quick 20)"
    )
    parser.add_argument("--quick", action="store_true", help="sync sizes 2000,10000, 2 rounds, smaller warm-ups")
    parser.add_argument("--skip", default="", help=f"sections to leave out, comma-separated: {','.join(SECTIONS)}")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = (2_000, 10_000) if args.quick else (10_000, 100_000)
    if len(args.sizes) != 2:
        parser.error("--sizes takes two numbers: throughput size,memory size")
    if args.engine_warmup is None:
        args.engine_warmup = 1000 if args.quick else 2500
    if args.sync_rounds is None:
        args.sync_rounds = 2 if args.quick else 3
    if args.publisher_rounds is None:
        args.publisher_rounds = 20 if args.quick else 40
    args.skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    if args.skip - set(SECTIONS):
        parser.error(f"unknown sections {sorted(args.skip - set(SECTIONS))}; known: {SECTIONS}")
    args.build_dir = args.build_dir.resolve()
    return args


def push_functions(build: Build) -> tuple[dict[str, Function], list[Function], Function | None, list[str]]:
    """Each push kind's function (by its route, else by its source directory's name),
    the scheduled functions, and the change publisher (the function the table's stream
    alone triggers: neither a push nor scheduled)."""
    from nxcloud_cdr.kinds import PUSH_KINDS  # noqa: PLC0415 - the layer (devtools puts it on the path)

    notes = []
    push: dict[str, Function] = {}
    for kind_name, kind in PUSH_KINDS.items():
        path = str(getattr(kind, "path", ""))
        found = [fn for fn in build.functions.values() if path and path in fn.http_paths]
        if not found:
            found = [fn for fn in build.functions.values() if kind_name in str(fn.code_dir).lower()]
        if found:
            push[kind_name] = found[0]
        else:
            notes.append(f"push kind {kind_name} has no function in the build: left out")
    scheduled = [
        fn for fn in build.functions.values() if fn not in push.values() and SCHEDULE_TYPES & set(fn.event_types)
    ]
    streamed = [
        fn
        for fn in build.functions.values()
        if fn not in push.values() and fn not in scheduled and "DynamoDB" in fn.event_types
    ]
    if len(streamed) > 1:
        notes.append(f"stream functions {', '.join(fn.name for fn in streamed[1:])}: left out (one publisher benched)")
    return push, scheduled, (streamed[0] if streamed else None), notes


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.monotonic()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    if not lambdas.LAMBDA_PYTHON.exists():
        raise SystemExit(f"{lambdas.LAMBDA_PYTHON} is missing: run `make deps`")
    build = read_build(args.build_dir)
    push, scheduled, publisher, notes = push_functions(build)
    log(
        f"build {build.root}: functions {', '.join(build.functions)}; layers {', '.join(build.layers)}; "
        f"push kinds {', '.join(f'{k}={f.name}' for k, f in push.items())}; scheduled "
        f"{', '.join(f.name for f in scheduled) or 'none'}; change publisher {publisher.name if publisher else 'none'}"
    )
    from bench.coldstart import cold_starts, without_bytecode  # noqa: PLC0415
    from bench.costs import cost_rows, size_rows  # noqa: PLC0415
    from bench.inprocess import warm_pushes, write_units  # noqa: PLC0415
    from bench.joinbench import copy_rows  # noqa: PLC0415
    from bench.publisher import publisher_rows  # noqa: PLC0415
    from bench.recordings import recording_rows  # noqa: PLC0415
    from bench.stand_in import IndexedFakeNxcloud  # noqa: PLC0415
    from bench.syncbench import sync_rows  # noqa: PLC0415

    sections: dict[str, Callable[[Session], list[Row]]] = {
        "size": size_rows,
        "cold": cold_starts,
        "nopyc": without_bytecode,
        "units": write_units,
        "warm": warm_pushes,
        "sync": sync_rows,
        "cost": cost_rows,
        "recordings": recording_rows,
        "copies": copy_rows,
        "publisher": publisher_rows,
    }
    rows: list[Row] = []
    errors: list[str] = []
    fake = IndexedFakeNxcloud([])
    with DynamoDBLocal() as engine, fake:
        drain(engine)
        os.environ.update(lambdas.aws_env(engine.endpoint))
        log(f"DynamoDB Local on {engine.endpoint}, stand-in NXCLOUD on {fake.base_url}")
        client = boto3.client("dynamodb", endpoint_url=engine.endpoint)
        session = Session(
            args, build, engine.endpoint, client, fake, push, scheduled, publisher=publisher, notes=list(notes)
        )
        session.warm_engine(args.engine_warmup)
        for function in build.functions.values():
            session.notes.extend(f"   {function.name}: {note}" for note in function.notes)
        for name, section in sections.items():
            if name in args.skip:
                continue
            try:
                rows.extend(section(session))
            except Exception as exc:
                log(f"section {name} failed:\n{traceback.format_exc()}")
                errors.append(f"section {name} could not be measured: {type(exc).__name__}: {str(exc)[:600]}")
    rows.sort(key=lambda row: row.section)
    elapsed = time.monotonic() - started
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_dir": str(build.root),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "runs": args.runs,
        "warm_n": args.warm_n,
        "sync_sizes": list(args.sizes),
        "sync_rounds": args.sync_rounds,
        "publisher_rounds": args.publisher_rounds,
        "seconds": round(elapsed, 1),
    }
    title = (
        f"nxcloud-cdr bench, {meta['date']}, build {build.root}, {meta['machine']}; cold starts: median of "
        f"{args.runs}; warm: median of {args.warm_n} per kind; sync: {args.sizes[0]} records x {args.sync_rounds} "
        f"rounds, {args.sizes[1]} once; publisher: {args.publisher_rounds} rounds"
    )
    print(render(rows, title))
    notes = sorted(session.notes, key=lambda note: note[:1] if note[:1].isdigit() else "0")
    for note in [*notes, *(f"ERROR {error}" for error in errors)]:
        print(note)
    print(f"bench took {elapsed:.0f} s")
    if args.json:
        write_json(args.json, rows, [*notes, *errors], meta)
    sys.stdout.flush()
    if errors:
        sys.exit(1)
