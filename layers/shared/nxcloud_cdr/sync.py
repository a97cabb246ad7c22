"""The scheduled sync: pulls call-centre records from NXCLOUD's CDR page API so that the
table is complete even when pushes were lost.

A run walks bounded windows of call time from the checkpoint to ``now - delay``. Each
window starts ``overlap`` seconds before the previous one ended (NXCLOUD documents
neither whether it filters on start or end time nor whether bounds are inclusive, and
records can appear late), is read page by page until a short page, and is written by
the write rule (:mod:`.write_rule`). The checkpoint moves only after every page of a
window is stored; within a window a cursor records the next page after each stored
page, so a crash or a timeout resumes where it stopped and never skips a record, and a
window too busy for one run still progresses.

A row that cannot become a record, or that DynamoDB cannot store, is quarantined by
itself (with the window and page it came from) and the run goes on: one bad row never
stops the sync.
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
from .nxcloud_api import CDR_PAGE_SIZE, NxcloudApiError, NxcloudClient, NxcloudDeadlineError
from .observability import logger
from .records import CallRecord
from .store import CallStore
from .sync_state import Cursor, SyncState
from .times import iso_utc
from .write_rule import RecordWriter

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
    superseded: int = 0  # copies kept as versions: the stored copy ranks higher
    rejected: int = 0  # rows quarantined
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
        writer: RecordWriter,
        state: SyncState,
        settings: SyncSettings,
        *,
        now: Callable[[], datetime],
        remaining_ms: Callable[[], int],
    ) -> None:
        self._api = api
        self._store = store
        self._writer = writer
        self._state = state
        self._settings = settings
        self._now = now
        self._remaining_ms = remaining_ms
        self._next_page = 1

    def run_scheduled(self) -> SyncReport:
        """From the checkpoint (or ``initial_lookback`` ago) to ``now - delay``; first
        the rest of a window a previous run stopped in, if any."""
        now_s = int(self._now().timestamp())
        end_limit = now_s - self._settings.delay_seconds
        checkpoint = self._state.checkpoint()
        if checkpoint is None:
            checkpoint = now_s - self._settings.initial_lookback_seconds
        cursor = self._state.cursor()
        report = SyncReport("scheduled", window_from=max(checkpoint - self._settings.overlap_seconds, 0))
        report.window_to = end_limit
        step = self._settings.window_max_seconds - self._settings.overlap_seconds
        while checkpoint < end_limit or cursor is not None:
            if cursor is not None:
                start, end, first_page = cursor.window_from, cursor.window_to, cursor.page
                report.window_from = min(report.window_from or start, start)
                cursor = None
            else:
                start = max(checkpoint - self._settings.overlap_seconds, 0)
                end, first_page = min(checkpoint + step, end_limit), 1
            if not self._sync_window(start, end, report, first_page, save_cursor=True):
                report.status = "partial"
                break
            self._state.advance(end, now_iso=iso_utc(self._now()))
            checkpoint = max(checkpoint, end)
            report.windows += 1
        report.reached = report.checkpoint = checkpoint
        report.lag_seconds = now_s - checkpoint
        return report

    def backfill(self, start_s: int, end_s: int, first_page: int = 1) -> SyncReport:
        """An explicit window of history; the regular checkpoint does not move. When it
        runs out of time, ``resume`` is the event that continues it (``page`` included)."""
        if end_s <= start_s:
            raise ValueError("a backfill needs 'from' before 'to'")
        report = SyncReport("backfill", window_from=start_s, window_to=end_s)
        cursor = start_s
        while cursor < end_s:
            end = min(cursor + self._settings.window_max_seconds, end_s)
            if not self._sync_window(cursor, end, report, first_page, save_cursor=False):
                report.status = "partial"
                report.resume = {"from": cursor, "to": end_s}
                if self._next_page > 1:
                    report.resume["page"] = self._next_page
                break
            cursor, first_page = end, 1
            report.windows += 1
        report.reached = cursor
        return report

    def _deadline_s(self) -> float:
        """Seconds this run may still spend on one page (the stop margin kept back)."""
        return (self._remaining_ms() - self._settings.stop_margin_seconds * 1000) / 1000

    def _sync_window(self, start_s: int, end_s: int, report: SyncReport, first_page: int, *, save_cursor: bool) -> bool:
        """Every page of one window from ``first_page``; False when it stopped for lack
        of time (``_next_page`` says where to go on)."""
        page = self._next_page = first_page
        previous_ids: list[str] | None = None
        while True:
            if self._deadline_s() <= 0:
                return False
            try:
                rows = self._api.cdr_page(
                    start_s, end_s, page, CDR_PAGE_SIZE, deadline=self._api.deadline_in(self._deadline_s())
                )
            except NxcloudDeadlineError:
                logger.warning("out of time while reading a page; the next run goes on from it", extra={"page": page})
                return False
            ids = [str(row.get("callId")) for row in rows]
            if rows and ids == previous_ids:
                raise NxcloudApiError(f"page {page} repeats page {page - 1}: NXCLOUD is not paging")
            self._store_page(rows, report, {"windowFrom": start_s, "windowTo": end_s, "page": page})
            report.pages += 1
            if len(rows) < CDR_PAGE_SIZE:
                return True
            previous_ids = ids
            page = self._next_page = page + 1
            if save_cursor:
                self._state.save_cursor(Cursor(start_s, end_s, page), now_iso=iso_utc(self._now()))

    def _quarantine(self, raw: str, reason: str, message: str, nxcloud_id: Any, origin: dict[str, Any]) -> None:
        # Kept like a bad push: nothing NXCLOUD sent is lost. A failure here is a
        # StoreError that fails the run before the checkpoint moves.
        self._store.quarantine(
            KIND,
            raw.encode("utf-8", "surrogatepass"),
            reason=reason,
            message=message[:500],
            received_at=self._now(),
            nxcloud_id=str(nxcloud_id or "") or None,
            origin={"source": "sync", **origin},
        )

    def _store_page(self, rows: list[dict[str, Any]], report: SyncReport, origin: dict[str, Any]) -> None:
        received_at = self._now()
        records: list[CallRecord] = []
        for row in rows:
            raw = row_text(row)
            try:
                records.append(map_cc_cdr(row, raw, self._settings.zone))
            except MissingIdError as exc:
                self._quarantine(raw, "missing_id", str(exc), None, origin)
                report.rejected += 1
            except ValidationError as exc:
                self._quarantine(raw, "invalid_fields", str(exc), row.get("callId"), origin)
                report.rejected += 1
            except Exception as exc:  # a bug of ours: keep the row for a backfill after the fix
                logger.exception("a CDR row could not be mapped")
                self._quarantine(raw, "unprocessable", f"{type(exc).__name__}: {exc}", row.get("callId"), origin)
                report.rejected += 1
        outcome = self._writer.write_many(records, received_at, source="sync")
        for record, reason, message in outcome.refused:
            self._quarantine(record.raw, reason, message, record.nxcloud_id, origin)
            report.rejected += 1
        report.new += outcome.stored
        report.updated += outcome.updated
        report.unchanged += outcome.unchanged
        report.superseded += outcome.superseded


def row_text(row: dict[str, Any]) -> str:
    """The row as NXCLOUD's JSON text, compact (the API's own bytes are not kept by
    ``requests``); ASCII-escaped only when it holds text UTF-8 cannot carry."""
    text = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(row, separators=(",", ":"))
    return text
