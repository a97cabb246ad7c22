"""Rows 2 and 3, and the log bytes of row 6: measured inside a push function's process
(:mod:`bench.worker`, in the development virtualenv, one process per kind)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench import lambdas
from bench.build import source_code_dirs
from bench.events import deployed_name
from bench.report import Row, at_most, ratio
from bench.session import Session, log
from devtools import REPO_ROOT

WARM_TARGET = 1.15
LOG_TARGET_BYTES = 512
NEW_RECORD_UNITS = {"pns_call_result": 5, "pns_binding_not_exist": 3, "cc_report": 4}
ITEM_TARGET_BYTES = 1024


def run_worker(session: Session, mode: str, kind: str, names: dict[str, str], **extra: Any) -> dict[str, Any]:
    function = session.push[kind]
    code_dir = source_code_dirs().get(function.name)
    if code_dir is None:
        raise RuntimeError(f"{function.name} is not in template.yaml")
    name = deployed_name(function.name)
    env = {
        **lambdas.lambda_env(session.endpoint, name, function.memory_mb),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "layers" / "shared"), str(REPO_ROOT)]),
        **session.push_env(function, names),
    }
    env.pop("PYTHONDONTWRITEBYTECODE")  # the development tree: bytecode is fine
    config = {
        "mode": mode,
        "kind": kind,
        "function": function.name,
        "code_dir": str(code_dir),
        "handler": function.handler,
        "memory_mb": function.memory_mb,
        "timeout_s": function.timeout_s,
        "environment": {},
        "tables": names,
        "records_table": names.get("CallRecordsTable") or next(iter(names.values())),
        "template": str(session.build.root / "template.yaml"),
        **extra,
    }
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as scratch:
        config_path, result_path = Path(scratch) / "config.json", Path(scratch) / "result.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        with (Path(scratch) / "stdout").open("w+") as stdout:
            completed = subprocess.run(  # noqa: PLW1510 - checked below
                [str(lambdas.DEV_PYTHON), "-m", "bench.worker", str(config_path), str(result_path)],
                env=env,
                cwd=REPO_ROOT,
                stdout=stdout,
                timeout=1800,
            )
            if completed.returncode != 0 or not result_path.is_file():
                stdout.seek(0)
                raise RuntimeError(f"worker {mode} {kind} exited {completed.returncode}: {stdout.read()[-1500:]}")
        result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    return result


def warm_pushes(session: Session) -> list[Row]:
    rows: list[Row] = []
    log_rows: list[Row] = []
    session.shared.setdefault("warm", {})
    for kind in session.push:
        names = session.fresh_tables("warm")
        try:
            log(f"warm pushes: {kind}, {session.args.warm_n} pushes interleaved with as many bare PutItem")
            result = run_worker(session, "warm", kind, names, n=session.args.warm_n, warmup=session.args.warmup)
        finally:
            session.drop_tables(names)
        session.shared["warm"][kind] = result
        for text in result.get("notes", []):
            session.note(f"2  {text}")
        lines = [line for line in str(result.get("log_sample", "")).splitlines() if line.strip()]
        if lines:
            shown = "; ".join(f"{len(line.encode()) + 1} B {line[:70]}..." for line in lines)
            session.note(f"6  {kind}: what one push prints ({len(lines)} line{'s' if len(lines) > 1 else ''}): {shown}")
        value = ratio(result["push_median_ms"], result["put_median_ms"])
        rows.append(
            Row(
                "2",
                f"warm push {kind} vs bare PutItem",
                result["push_median_ms"],
                "ms",
                baseline=result["put_median_ms"],
                ratio=value,
                target=f"<={WARM_TARGET}x",
                meets=at_most(WARM_TARGET)(value),
                detail={key: result[key] for key in ("outcomes", "bare_item_bytes", "clients_seen")},
            )
        )
        log_rows.append(
            Row(
                "6",
                f"log bytes per push {kind} ({result.get('log_level') or 'default'})",
                result["log_bytes_mean"],
                "B",
                target=f"<={LOG_TARGET_BYTES} B",
                meets=at_most(LOG_TARGET_BYTES)(result["log_bytes_mean"]),
                detail={"per_push_min": min(result["log_bytes"]), "per_push_max": max(result["log_bytes"])},
            )
        )
    session.note(
        "2  warm: one process (.venv, the source tree: layers/shared on PYTHONPATH and functions/<name>/app.py, "
        "which `make bench` has just built; rows 3 and 6 too), per kind "
        f"{session.args.warm_n} pushes through app.handler (new records) alternating with as many PutItem "
        "(ConditionExpression attribute_not_exists(pk)) of build_item(mapped record) through a plain boto3 client, "
        f"after {session.args.warmup} of each as warm-up; median per operation, local machine, DynamoDB Local."
    )
    session.shared["log_rows"] = log_rows
    return rows


def _units_text(units: dict[str, float]) -> str:
    names = sorted((name for name in units if name != "total"), key=lambda name: (name != "Table", name))
    parts = [f"{name} {units[name]:g}" for name in names]
    return " + ".join(parts) if parts else "none"


# The deploy parameters of the optional lookups (template.yaml): every lookup (the
# default), and the lookups every deployment has.
LOOKUPS = {"all lookups": {}, "lean lookups": {"DidLookup": "false", "CustomerBindIdLookup": "false"}}


def write_units(session: Session) -> list[Row]:
    rows: list[Row] = []
    session.shared.setdefault("units", {})
    session.shared.setdefault("units_lean", {})
    for kind in session.push:
        names = session.fresh_tables("units")
        try:
            log(f"write units: {kind} (new record, duplicate, rejected body)")
            result = run_worker(session, "units", kind, names)
        finally:
            session.drop_tables(names)
        session.shared["units"][kind] = result
        lean_names = session.fresh_tables("lean", LOOKUPS["lean lookups"])
        try:
            log(f"write units: {kind}, lean lookups")
            lean = run_worker(session, "units", kind, lean_names)
        finally:
            session.drop_tables(lean_names)
        session.shared["units_lean"][kind] = lean
        lean_new = lean["new"]["measured"].get("total", lean["new"]["computed"]["total"])
        new, duplicate, rejected = result["new"], result["duplicate"], result["rejected"]
        for case, expected in ((new, 200), (duplicate, 200), (rejected, 400)):
            if case["status"] != expected:
                session.note(f"3  {kind}: answered {case['status']} where {expected} was expected: {case['answer']}")
        measured_new = new["measured"].get("total")
        computed_new = float(new["computed"]["total"])
        if measured_new is None:
            session.note(
                f"3  {kind}: DynamoDB reported no capacity for the new record "
                f"({new['writes_reported']} of {new['writes']} writes; clients seen {result['clients_seen']}): "
                "the figure is computed"
            )
        figure_new = measured_new if measured_new is not None else computed_new
        target = NEW_RECORD_UNITS.get(kind)
        rows.append(
            Row(
                "3",
                f"WCU new record {kind}, all lookups (default)",
                figure_new,
                "WCU",
                baseline=computed_new,
                ratio=ratio(measured_new, computed_new),
                target=f"<={target} WCU" if target else "-",
                meets=at_most(target)(figure_new) if target else None,
                detail={"measured": new["measured"], "computed": new["computed"], "operations": new["operations"]},
            )
        )
        rows.append(
            Row(
                "3",
                f"WCU new record {kind}, DidLookup/CustomerBindIdLookup off",
                float(lean_new),
                "WCU",
                baseline=float(lean["new"]["computed"]["total"]),
                ratio=ratio(lean["new"]["measured"].get("total"), float(lean["new"]["computed"]["total"])),
                target=f"<={target} WCU" if target else "-",
                meets=at_most(target)(float(lean_new)) if target else None,
                detail={"measured": lean["new"]["measured"], "computed": lean["new"]["computed"]},
            )
        )
        measured_dup = duplicate["measured"].get("total", 0.0)
        computed_dup = float(duplicate["computed"]["total"])
        rows.append(
            Row(
                "3",
                f"WCU duplicate {kind}",
                computed_dup + measured_dup,
                "WCU",
                detail={
                    "measured": duplicate["measured"],
                    "computed": duplicate["computed"],
                    "operations": duplicate["operations"],
                },
            )
        )
        measured_rej = rejected["measured"].get("total")
        computed_rej = float(rejected["computed"]["total"])
        rows.append(
            Row(
                "3",
                f"WCU rejected body {kind}",
                measured_rej if measured_rej is not None else computed_rej,
                "WCU",
                baseline=computed_rej,
                ratio=ratio(measured_rej, computed_rej),
                detail={"measured": rejected["measured"], "computed": rejected["computed"]},
            )
        )
        item_bytes = result.get("item_bytes")
        rows.append(
            Row(
                "3",
                f"stored item {kind} vs its body",
                item_bytes,
                "B",
                baseline=result.get("body_bytes"),
                ratio=ratio(item_bytes, result.get("body_bytes")),
                target=f"<{ITEM_TARGET_BYTES} B",
                meets=None if item_bytes is None else item_bytes < ITEM_TARGET_BYTES,
            )
        )
        reads = {case: result[case]["measured_reads"].get("total") for case in ("new", "duplicate", "rejected")}
        read_text = ", ".join(f"{case} {value:g}" for case, value in reads.items() if value) or "none"
        session.note(
            f"3  {kind}: new: {' '.join(new['operations'])}: measured {_units_text(new['measured'])}; "
            f"computed {_units_text(new['computed']['units'])}. duplicate: {' '.join(duplicate['operations'])}: "
            f"computed {_units_text(duplicate['computed']['units'])} (a failed conditional write reports no "
            f"capacity). rejected: {' '.join(rejected['operations'])}: measured {_units_text(rejected['measured'])}; "
            f"computed {_units_text(rejected['computed']['units'])}. Read units: {read_text}."
        )
    return rows
