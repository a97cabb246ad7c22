"""A push's time: a write stops before a step it could not finish within the function's
Timeout, so that the push is answered 503 by the function itself (NXCLOUD retries it)
and not by API Gateway's error when Lambda stops the function half way.

Every step of the write rule is a conditional write or a read that leaves the table
readable by the next writer (a version kept before the item that joins it), so stopping
between two steps loses nothing: NXCLOUD's retry joins from where this one stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .store_errors import StoreError


class OutOfTimeError(StoreError):
    """Too little of the invocation is left to make the next call and answer."""


@dataclass(frozen=True)
class Deadline:
    # Milliseconds left in the invocation (the Lambda context's get_remaining_time_in_millis).
    remaining_ms: Callable[[], int]
    # What the next step may take at worst (every attempt of one call timing out, with the
    # backoff between them) and the answer after it.
    reserve_ms: int

    def check(self, step: str) -> None:
        left = self.remaining_ms()
        if left < self.reserve_ms:
            raise OutOfTimeError(f"{left} ms left, {self.reserve_ms} ms needed to {step} and answer")


def check(deadline: Deadline | None, step: str) -> None:
    """Raise :class:`OutOfTimeError` when ``deadline`` leaves no time for ``step``."""
    if deadline is not None:
        deadline.check(step)
