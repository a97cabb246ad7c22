"""The stand-in NXCLOUD (devtools.fake_nxcloud) as the bench uses it: pages cut from an
index, and the time it spends answering counted."""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from typing import Any

from devtools.fake_nxcloud import FakeNxcloud, generate_records


def _start_ms(record: Any) -> int | None:
    try:
        return int(record["startTime"])
    except (KeyError, TypeError, ValueError):
        return None


class IndexedFakeNxcloud(FakeNxcloud):
    """The stand-in, its pages cut from records sorted once instead of at each request
    (100k records sorted per page would make the stand-in the bottleneck). Same pages:
    inclusive bounds on the call start in seconds, ordered by start then callId. A set
    holding a record without a readable start is served by the stand-in's own code."""

    _indexed_for: object = None
    _seconds: list[int]
    _ordered: list[dict[str, Any]]
    _served: tuple[int, float] = (0, 0.0)

    def answer(self, path: str, headers: dict[str, str], body: str) -> tuple[int, Any, dict[str, str]]:
        start = time.perf_counter()
        try:
            return super().answer(path, headers, body)
        finally:
            count, seconds = self._served
            self._served = (count + 1, seconds + time.perf_counter() - start)

    def take_served(self) -> tuple[int, float]:
        """Requests answered, and the time spent answering them, since the last call."""
        served, self._served = self._served, (0, 0.0)
        return served

    def _index(self) -> bool:
        records = self.records
        if self._indexed_for is records:
            return True
        timed = [(_start_ms(record), record) for record in records]
        if any(ms is None for ms, _ in timed):
            return False
        ordered = sorted(((int(ms or 0), record) for ms, record in timed), key=lambda p: (p[0], str(p[1]["callId"])))
        self._seconds = [ms // 1000 for ms, _ in ordered]
        self._ordered = [record for _, record in ordered]
        self._indexed_for = records
        return True

    def page(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        asked = self.page_request(request)
        if asked is None:
            return []
        start_s, end_s, page, size = asked
        if not self._index():
            return super().page(request)
        matching = self._ordered[bisect_left(self._seconds, start_s) : bisect_right(self._seconds, end_s)]
        return matching[(page - 1) * size : page * size]


def check_indexed_pages() -> None:
    """The indexed stand-in serves the pages the stand-in serves."""
    records = generate_records(450, 1_700_000_000_000, 7_200_000, seed=1)
    plain, indexed = FakeNxcloud(records), IndexedFakeNxcloud(records)
    for start, end, page in ((1_700_000_000, 1_700_003_600, 1), (1_700_000_000, 1_700_007_200, 3), (0, 2**40, 5)):
        request = {"startTime": start, "endTime": end, "page": page, "size": 100}
        if plain.page(request) != indexed.page(request):
            raise AssertionError("the indexed stand-in serves other pages than the stand-in")
