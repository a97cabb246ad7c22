"""The scheduled sync: pulls call-centre records from NXCLOUD's CDR page API so that the
table is complete even when pushes were lost.

A run walks bounded windows of call time from the checkpoint to ``now - delay``. Each
window starts ``overlap`` seconds before the previous one ended (NXCLOUD documents
neither whether it filters on start or end time nor whether bounds are inclusive, and
records can appear late), is read page by page until a short page, and is written
idempotently. The checkpoint moves only after every page of a window is stored, so a
crash or a timeout resumes at the last finished window and never skips a record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from .config import SyncSettings
from .mapping import MissingIdError, map_cc_cdr
from .nxcloud_api import CDR_PAGE_SIZE, NxcloudApiError, NxcloudClient
from .records import CallRecord
from .store import CallStore
from .sync_state import SyncState
from .times import iso_utc

KIND = "cc_cdr"


@dataclass
class SyncReport:
    mode: str  # "scheduled" or "backfill"
    status: str = "complete"  # "complete", or "partial" when it stopped for time
    window_from: int | None = None  # epoch seconds
    window_to: int | None = None
    reached: int | None = None  # every record before this is stored
    windows: int = 0
    pages: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    checkpoint: int | None = None
    lag_seconds: int | None = None
    resume: dict[str, int] | None = None  # the backfill event that continues this one

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CdrSync:
    def __init__(
        self,
        api: NxcloudClient,
        store: CallStore,
        state: SyncState,
        settings: SyncSettings,
        *,
        now: Callable[[], datetime],
        remaining_ms: Callable[[], int],
    ) -> None:
        self._api = api
        self._store = store
        self._state = state
        self._settings = settings
        self._now = now
        self._remaining_ms = remaining_ms

    def run_scheduled(self) -> SyncReport:
        """From the checkpoint (or ``initial_lookback`` ago) to ``now - delay``."""
        now_s = int(self._now().timestamp())
        end_limit = now_s - self._settings.delay_seconds
        checkpoint = self._state.checkpoint()
        if checkpoint is None:
            checkpoint = now_s - self._settings.initial_lookback_seconds
        report = SyncReport("scheduled", window_from=max(checkpoint - self._settings.overlap_seconds, 0))
        report.window_to = end_limit
        step = self._settings.window_max_seconds - self._settings.overlap_seconds
        while checkpoint < end_limit:
            start = max(checkpoint - self._settings.overlap_seconds, 0)
            end = min(checkpoint + step, end_limit)
            if not self._sync_window(start, end, report):
                report.status = "partial"
                break
            self._state.advance(end, now_iso=iso_utc(self._now()))
            checkpoint = end
            report.windows += 1
        report.reached = report.checkpoint = checkpoint
        report.lag_seconds = now_s - checkpoint
        return report

    def backfill(self, start_s: int, end_s: int) -> SyncReport:
        """An explicit window of history; the regular checkpoint does not move."""
        if end_s <= start_s:
            raise ValueError("a backfill needs 'from' before 'to'")
        report = SyncReport("backfill", window_from=start_s, window_to=end_s)
        cursor = start_s
        while cursor < end_s:
            end = min(cursor + self._settings.window_max_seconds, end_s)
            if not self._sync_window(cursor, end, report):
                report.status = "partial"
                report.resume = {"from": cursor, "to": end_s}
                break
            cursor = end
            report.windows += 1
        report.reached = cursor
        return report

    def _sync_window(self, start_s: int, end_s: int, report: SyncReport) -> bool:
        """Every page of one window; False when it stopped for lack of time."""
        page = 1
        previous_ids: list[str] | None = None
        while True:
            if self._remaining_ms() < self._settings.stop_margin_seconds * 1000:
                return False
            rows = self._api.cdr_page(start_s, end_s, page, CDR_PAGE_SIZE)
            ids = [str(row.get("callId")) for row in rows]
            if rows and ids == previous_ids:
                raise NxcloudApiError(f"page {page} repeats page {page - 1}: NXCLOUD is not paging")
            self._store_page(rows, report)
            report.pages += 1
            if len(rows) < CDR_PAGE_SIZE:
                return True
            previous_ids = ids
            page += 1

    def _store_page(self, rows: list[dict[str, Any]], report: SyncReport) -> None:
        received_at = self._now()
        records: list[CallRecord] = []
        for row in rows:
            raw = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
            try:
                records.append(map_cc_cdr(row, raw, self._settings.zone))
            except (MissingIdError, ValidationError, ValueError) as exc:
                # Kept like a bad push: nothing NXCLOUD sent is lost.
                reason = "missing_id" if isinstance(exc, MissingIdError) else "invalid_fields"
                self._store.quarantine(
                    KIND,
                    raw.encode("utf-8"),
                    reason=reason,
                    message=str(exc)[:500],
                    received_at=received_at,
                    nxcloud_id=str(row.get("callId") or "") or None,
                )
                report.rejected += 1
        result = self._store.put_records_batch(records, received_at, source="sync")
        report.new += result.new
        report.updated += result.updated
        report.unchanged += result.unchanged
