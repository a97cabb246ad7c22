"""Row 8: what a new distinct copy of one call costs as copies accumulate. A push
function's handler (in its own process, :mod:`bench.worker`) receives 1,000 distinct
copies of one call, one after another, on a new DynamoDB Local: the time and the write
units of a copy arriving when 10, 100 and 1,000 are kept, beside the second copy's
(the first join). The write rule promises both flat: a copy is joined with the item's
state alone, whatever was kept before it.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.inprocess import run_worker
from bench.report import Row, at_most, ratio
from bench.session import Session, log

KIND = "pns_call_result"
COPIES = 1_000
FLAT_LATENCY = 1.25  # a shared 2-core machine's noise on a median of tens of pushes
FLAT_UNITS = 1.0


def _window(per_copy: list[dict[str, Any]], last: int) -> list[dict[str, Any]]:
    """The copies that arrived when ``last`` / 10 to ``last`` were kept (copy 1 is the
    new record; its window starts at the second copy)."""
    return per_copy[max(last // 10, 1) : last]


def copy_rows(session: Session) -> list[Row]:
    if KIND not in session.push:
        session.note(f"8  no {KIND} function in the build: no figures of copies")
        return []
    copies = session.args.copies
    with session.on_fresh_engine(session.args.engine_warmup) as (fresh, _):
        names = fresh.fresh_tables("copies")
        result = run_worker(fresh, "copies", KIND, names, copies=copies)
    per_copy = result["per_copy"]
    marks = [mark for mark in (10, 100, 1_000, 10_000) if mark <= copies]
    figures = {
        mark: {
            "ms": statistics.median(item["ms"] for item in _window(per_copy, mark)),
            "wcu": statistics.fmean(item["wcu"] for item in _window(per_copy, mark)),
            "rcu": statistics.fmean(item["rcu"] for item in _window(per_copy, mark)),
            "calls": statistics.fmean(item["calls"] for item in _window(per_copy, mark)),
        }
        for mark in marks
    }
    first = per_copy[0]
    log(f"copies: {copies} distinct copies of one call: {figures}")
    outcomes = sorted({str(item["outcome"]) for item in per_copy[1:]})
    session.note(
        f"8  {copies} distinct copies of one {KIND} call pushed one after another through its handler, each with "
        f"another value in one field; the first (a new record): {first['ms']:.1f} ms, {first['wcu']:.0f} WCU. Per "
        "copy, over the copies that arrived when a tenth to all of N were kept (median time, mean units and calls): "
        + "; ".join(
            f"N={mark}: {values['ms']:.1f} ms, {values['wcu']:.1f} WCU, {values['rcu']:.1f} RCU, "
            f"{values['calls']:.1f} calls"
            for mark, values in figures.items()
        )
        + f". Outcomes after the first: {', '.join(outcomes)}"
    )
    low, high = figures[marks[0]], figures[marks[-1]]
    latency, units = ratio(high["ms"], low["ms"]), ratio(high["wcu"], low["wcu"])
    return [
        Row(
            "8",
            f"a new copy's time with {marks[-1]} kept vs {marks[0]}",
            high["ms"],
            "ms",
            baseline=low["ms"],
            ratio=latency,
            target=f"flat (<={FLAT_LATENCY}x)",
            meets=at_most(FLAT_LATENCY)(latency),
            detail={"figures": figures, "first": first},
        ),
        Row(
            "8",
            f"a new copy's write units with {marks[-1]} kept vs {marks[0]}",
            high["wcu"],
            "WCU",
            baseline=low["wcu"],
            ratio=units,
            target=f"flat (<={FLAT_UNITS}x)",
            meets=at_most(FLAT_UNITS + 1e-9)(units),
        ),
    ]
