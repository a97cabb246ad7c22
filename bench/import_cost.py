"""Import (cold start) cost of each built handler, beside boto3 alone, in a Python 3.13
with boto3 and nothing else (as on Lambda). Needs `make build` first.

    .venv-lambda/bin/python -s bench/import_cost.py [runs]

Each run is a fresh interpreter that writes no bytecode, as on Lambda, where /opt and
/var/task are read-only. The build ships the layer's bytecode (unchecked-hash .pyc, see
layers/shared/Makefile); the same build with its .pyc removed (what a plain
`BuildMethod: python3.13` layer gives: every cold start compiles the layer from source)
is measured side by side, interleaved. The median of the runs is printed.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".aws-sam" / "build"
PROBE = """
import json, sys, time
sys.path[:0] = sys.argv[1:3]
start = time.perf_counter()
import boto3
middle = time.perf_counter()
if sys.argv[1] != "-":
    import app
end = time.perf_counter()
print(json.dumps({"boto3": (middle - start) * 1000, "handler": (end - middle) * 1000}))
"""
ENV = {
    "TABLE_NAME": "t",
    "QUARANTINE_TABLE_NAME": "q",
    "PUSH_TOKEN": "x",
    "PATH": "/usr/bin:/bin",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def measure(build: Path, function: str, runs: int) -> tuple[float, float]:
    layer = str(build / "SharedLayer" / "python")
    target = str(build / function) if function != "-" else "-"
    samples = [
        json.loads(
            subprocess.run(
                [sys.executable, "-s", "-c", PROBE, target, layer], env=ENV, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(s["boto3"] for s in samples), statistics.median(s["handler"] for s in samples)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    if not (BUILD / "SharedLayer").exists():
        raise SystemExit("run `make build` first")
    with tempfile.TemporaryDirectory() as scratch:
        source_only = Path(scratch) / "build"
        shutil.copytree(BUILD, source_only)
        for cache in list(source_only.rglob("__pycache__")):
            shutil.rmtree(cache)
        print(f"median of {runs} fresh interpreters that write no bytecode, ms")
        print(f"{'function':<28}{'boto3':>7}{'handler (as built)':>20}{'handler (no .pyc)':>19}{'ratio':>7}")
        for function in (
            "-",
            "PnsCallResultFunction",
            "PnsBindingNotExistFunction",
            "CcReportFunction",
            "CcCdrSyncFunction",
        ):
            boto3_ms, built_ms = measure(BUILD, function, runs)
            _, source_ms = measure(source_only, function, runs)
            ratio = f"{source_ms / built_ms:.1f}x" if function != "-" else ""
            name = "(boto3 only)" if function == "-" else function
            print(f"{name:<28}{boto3_ms:>7.0f}{built_ms:>20.0f}{source_ms:>19.0f}{ratio:>7}")


if __name__ == "__main__":
    main()
