"""The scheduled sync: pulls call-centre records from NXCLOUD's CDR page API so that the
table is complete even when pushes were lost.

A run walks bounded windows of call time from the checkpoint to ``now - delay``. Each
window starts ``overlap`` seconds before the previous one ended (NXCLOUD documents
neither whether it filters on start or end time nor whether bounds are inclusive, and
records can appear late), is read page by page until a short page, and is written by
the write rule (:mod:`.write_rule`). The checkpoint moves only after every page of a
window is stored, so a crash or a timeout resumes at the last finished window and never
skips a record. A window that took a whole run without being finished is read again,
half as large, by the next run (and the size grows back once windows finish), so a busy
period still progresses, and a window is always read from its first page: NXCLOUD's
pages are positions, which shift when its data changes between runs.

A row that cannot become a record, or that DynamoDB cannot store, is quarantined by
itself (with the window and page it came from) and the run goes on: one bad row never
stops the sync.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from . import nxjson
from .config import SyncSettings
from .mapping import MissingIdError
from .nxcloud_api import CDR_PAGE_SIZE, NxcloudApiError, NxcloudClient, NxcloudDeadlineError, NxcloudRateLimitedError
from .observability import logger
from .payloads.cc_cdr import map_cc_cdr
from .records import CallRecord, content_hash
from .store import CallStore
from .sync_state import SyncState
from .times import iso_utc
from .write_rule import RecordWriter

KIND = "cc_cdr"
# Pages stored at once while the next is read (each writes with the rule's own threads).
_PAGES_IN_FLIGHT = 2
# The least a window moves the checkpoint past its overlap.
_MIN_STEP_SECONDS = 60


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
    kept: int = 0  # copies kept as versions that changed nothing shown (the merge had it all)
    window_seconds: int | None = None  # the window size this run started with
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
        self._last_full_page = 0
        self._rate_limited = False
        self._report_lock = threading.Lock()

    def run_scheduled(self) -> SyncReport:
        """From the checkpoint (or ``initial_lookback`` ago) to ``now - delay``, in windows
        of the size the last runs could read (see :meth:`_shrink`)."""
        now_s = int(self._now().timestamp())
        end_limit = now_s - self._settings.delay_seconds
        position = self._state.position()
        checkpoint = position.until
        if checkpoint is None:
            checkpoint = now_s - self._settings.initial_lookback_seconds
        overlap, largest = self._settings.overlap_seconds, self._settings.window_max_seconds
        # Within the configured bounds, whatever was stored before a configuration change.
        window = max(min(position.window_seconds or largest, largest), self._least(overlap))
        report = SyncReport("scheduled", window_from=max(checkpoint - overlap, 0), window_seconds=window)
        report.window_to = end_limit
        while checkpoint < end_limit:
            start = max(checkpoint - overlap, 0)
            end = min(checkpoint + window - overlap, end_limit)
            first_page = position.first_page(start, end) if window == self._least(overlap) else 1
            if not self._sync_window(start, end, report, first_page):
                report.status = "partial"
                if report.windows == 0 and not self._rate_limited:
                    self._shrink(window, overlap, start, end, first_page)
                break
            self._state.advance(end, now_iso=iso_utc(self._now()))
            checkpoint = max(checkpoint, end)
            report.windows += 1
        if window < largest and (report.status == "complete" or report.windows >= 2):
            # Windows of this size are read with time to spare: the next run may read larger ones.
            self._state.set_window_seconds(min(window * 2, largest), now_iso=iso_utc(self._now()))
        report.reached = report.checkpoint = checkpoint
        report.lag_seconds = now_s - checkpoint
        return report

    def _shrink(self, window: int, overlap: int, start: int, end: int, first_page: int) -> None:
        """A window took a whole run without being finished: the next run reads one half
        as large, from its first page (NXCLOUD's pages are positions, which shift when its
        data changes between two runs, so a page number read then may not hold the same
        rows now). Only a window already at its least size, still too busy for one run,
        goes on at a page: the last page this run read whole, read again, so that rows
        shifted by up to a page are still seen; later if the run read just one page, so
        that every run moves on."""
        now_iso = iso_utc(self._now())
        if window > self._least(overlap):
            self._state.set_window_seconds(max(window // 2, self._least(overlap)), now_iso=now_iso)
            return
        last = self._last_full_page
        if last >= first_page:
            resume = last if last > first_page else last + 1
            self._state.save_resume_page(start, end, resume, now_iso=now_iso)
            logger.warning(
                "window too busy for one run even at its least size: going on at a page", extra={"page": resume}
            )

    @staticmethod
    def _least(overlap: int) -> int:
        """The smallest window: its overlap and a minute, so that it always moves on."""
        return overlap + _MIN_STEP_SECONDS

    def backfill(self, start_s: int, end_s: int, window_s: int | None = None) -> SyncReport:
        """An explicit window of history; the regular checkpoint does not move. When it
        runs out of time, ``resume`` is the event that continues it (with the window
        size to use, smaller when one window took the whole run)."""
        if end_s <= start_s:
            raise ValueError("a backfill needs 'from' before 'to'")
        largest = self._settings.window_max_seconds
        window = max(min(window_s or largest, largest), _MIN_STEP_SECONDS)
        report = SyncReport("backfill", window_from=start_s, window_to=end_s, window_seconds=window)
        cursor = start_s
        while cursor < end_s:
            end = min(cursor + window, end_s)
            if not self._sync_window(cursor, end, report, 1):
                report.status = "partial"
                shrink = report.windows == 0 and not self._rate_limited
                smaller = max((end - cursor) // 2, _MIN_STEP_SECONDS) if shrink else window
                report.resume = {"from": cursor, "to": end_s, "window": smaller}
                break
            cursor = end
            report.windows += 1
        report.reached = cursor
        return report

    def _deadline_s(self) -> float:
        """Seconds this run may still spend on one page (the stop margin kept back)."""
        return (self._remaining_ms() - self._settings.stop_margin_seconds * 1000) / 1000

    def _sync_window(self, start_s: int, end_s: int, report: SyncReport, first_page: int) -> bool:
        """Every page of one window from ``first_page``; False when it stopped for lack of
        time (``_last_full_page`` is then the last page stored with every page before it,
        ``_rate_limited`` whether NXCLOUD asked to come back later).

        Pipelined: pages are read in order and stored on threads of their own, up to
        :data:`_PAGES_IN_FLIGHT` at once, so that one page's reads and mapping overlap
        another's writes (the write rule holds under any concurrency, two pages with one
        call included); the window is done only once every page is stored."""
        page = first_page
        self._last_full_page, self._rate_limited = first_page - 1, False
        previous: list[str] | None = None
        in_flight: dict[int, Future[None]] = {}

        def settle(keep: int) -> None:
            """Wait until at most ``keep`` pages are in flight, the oldest first; a page's
            store failure is the window's."""
            while len(in_flight) > keep:
                number = min(in_flight)
                in_flight.pop(number).result()
                report.pages += 1
                self._last_full_page = number

        with ThreadPoolExecutor(max_workers=_PAGES_IN_FLIGHT, thread_name_prefix="page-store") as writer:
            try:
                while True:
                    if self._deadline_s() <= 0:
                        settle(0)
                        return False
                    try:
                        rows = self._api.cdr_page(
                            start_s, end_s, page, CDR_PAGE_SIZE, deadline=self._api.deadline_in(self._deadline_s())
                        )
                    except NxcloudDeadlineError as exc:
                        self._rate_limited = isinstance(exc, NxcloudRateLimitedError)
                        logger.warning(
                            "out of time while reading a page; the next run reads this window again",
                            extra={"page": page, "reason": str(exc)[:300]},
                        )
                        settle(0)
                        return False
                    # Compared on content: rows without ids (a renamed field) must not look alike.
                    hashes = [_row_hash(row, number) for number, row in enumerate(rows)]
                    if rows and hashes == previous:
                        raise NxcloudApiError(f"page {page} repeats page {page - 1}: NXCLOUD is not paging")
                    settle(_PAGES_IN_FLIGHT - 1)
                    origin = {"windowFrom": start_s, "windowTo": end_s, "page": page}
                    in_flight[page] = writer.submit(self._store_page, rows, report, origin)
                    if len(rows) < CDR_PAGE_SIZE:
                        settle(0)
                        return True
                    previous = hashes
                    page += 1
            finally:
                # A run that fails leaves no write running behind it.
                wait(list(in_flight.values()))

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

    def _store_page(self, rows: list[Any], report: SyncReport, origin: dict[str, Any]) -> None:
        received_at = self._now()
        records: list[CallRecord] = []
        rejected = 0
        for row in rows:
            raw = row_text(row)
            if not isinstance(row, dict):
                self._quarantine(raw, "not_an_object", f"a row that is a JSON {type(row).__name__}", None, origin)
                rejected += 1
                continue
            twice = nxjson.duplicated_name(row)
            if twice is not None:
                # Which value NXCLOUD meant is unknowable: kept with every value, as for pushes.
                message = f"the field {twice[:100]!r} appears more than once in one object"
                self._quarantine(raw, "duplicate_key", message, row.get("callId"), origin)
                rejected += 1
                continue
            try:
                records.append(map_cc_cdr(row, raw, self._settings.zone))
            except MissingIdError as exc:
                self._quarantine(raw, "missing_id", str(exc), None, origin)
                rejected += 1
            except ValidationError as exc:
                self._quarantine(raw, "invalid_fields", str(exc), row.get("callId"), origin)
                rejected += 1
            except Exception as exc:  # a bug of ours: keep the row for a backfill after the fix
                logger.exception("a CDR row could not be mapped")
                self._quarantine(raw, "unprocessable", f"{type(exc).__name__}: {exc}", row.get("callId"), origin)
                rejected += 1
        # Through the conditional writes: the call-log callback may write the same calls.
        outcome = self._writer.write_many(records, received_at, source="sync")
        for record, reason, message in outcome.refused:
            self._quarantine(record.raw, reason, message, record.nxcloud_id, origin)
            rejected += 1
        with self._report_lock:  # pages are stored on threads of their own
            report.rejected += rejected
            report.new += outcome.stored
            report.updated += outcome.updated
            report.unchanged += outcome.unchanged
            report.kept += outcome.kept


def _row_hash(row: Any, number: int) -> str:
    try:
        return content_hash(row)
    except (RecursionError, ValueError):  # too deep to write: never the same as another row
        return f"unhashable-{number}"


def row_text(row: Any) -> str:
    """The row as JSON text, compact, its numbers exact and every value of a field named
    twice kept (``requests`` does not keep the API's own bytes of each row); ASCII-escaped
    only when it holds text UTF-8 cannot carry."""
    text = nxjson.dumps(row)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return nxjson.dumps(row, ensure_ascii=True)
    return text
