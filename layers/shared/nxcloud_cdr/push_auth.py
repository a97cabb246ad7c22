"""The secret token in each push URL: only NXCLOUD, who was given the URL, may push."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from .config import PushSettings
from .secret_store import secret_string


class PushToken:
    """The expected token, read from Secrets Manager once per container and again
    after ``max_age`` seconds, so that a rotated secret is picked up without a deploy."""

    def __init__(self, load: Callable[[], str], max_age_seconds: int) -> None:
        self._load = load
        self._max_age = max_age_seconds
        self._value: str | None = None
        self._loaded_at = 0.0

    def _current(self) -> str:
        now = time.monotonic()
        if self._value is None or now - self._loaded_at > self._max_age:
            self._value = self._load()
            self._loaded_at = now
        return self._value

    def matches(self, presented: str) -> bool:
        expected = self._current()
        # An empty expected token would let an empty path segment in.
        if not expected:
            return False
        return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def push_token_from_settings(settings: PushSettings) -> PushToken:
    if settings.push_token:
        token = settings.push_token
        return PushToken(lambda: token, settings.push_token_max_age_seconds)

    return PushToken(lambda: secret_string(settings.push_token_secret_id).strip(), settings.push_token_max_age_seconds)
