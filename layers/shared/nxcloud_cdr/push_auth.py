"""The secret token in each push URL: only NXCLOUD, who was given the URL, may push.

A rotation (``nxcdr rotate-token``, or ``put-secret-value``) makes the new value
Secrets Manager's ``AWSCURRENT`` version and the old one ``AWSPREVIOUS``. Both are
accepted until ``PUSH_TOKEN_OVERLAP_HOURS`` after the current version was created, so
that NXCLOUD can be given the new URLs without a single push being refused meanwhile.
The token values are never logged.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from .config import PushSettings
from .observability import count, logger
from .secret_store import secrets_client

TokenMatch = Literal["current", "previous"]

# After a failed refresh the cached tokens stay in use and the read is tried again
# this much later (not at every push, and not only after the full max age).
REFRESH_RETRY_SECONDS = 30.0


@dataclass(frozen=True, repr=False)
class PushTokens:
    """The tokens accepted at one time: the current one and, during an overlap, the
    previous one (until the epoch second ``previous_until``)."""

    current: str
    previous: str = ""
    previous_until: float = 0.0

    def __repr__(self) -> str:  # never the values
        return f"PushTokens(previous={'set' if self.previous else 'none'}, previous_until={self.previous_until})"


def _equal(presented: bytes, expected: str) -> bool:
    # An empty expected token would let an empty path segment in.
    return bool(expected) and hmac.compare_digest(presented, expected.encode("utf-8", "surrogatepass"))


class TokenTrustExpiredError(RuntimeError):
    """The cached token is too old to trust and the secret still cannot be read."""


class PushToken:
    """The accepted tokens, read once per container and again ``max_age_seconds`` later,
    so that a rotated secret is picked up without a deploy.

    ``load`` returns the tokens (a plain string: the current one only). When a refresh
    fails, the cached tokens stay in use, a warning is logged and ``TokenRefreshFailures``
    counted, and the read is retried ``retry_seconds`` later, for at most
    ``trust_seconds`` after the last read that worked: a token rotated out meanwhile
    must not stay accepted for as long as the container lives. Past that, and when
    nothing was ever read, ``match`` raises (the receiver answers 503 and NXCLOUD
    retries). ``clock`` is the wall clock (epoch seconds) that ends the overlap.
    """

    def __init__(
        self,
        load: Callable[[], PushTokens | str],
        max_age_seconds: float,
        *,
        retry_seconds: float = REFRESH_RETRY_SECONDS,
        trust_seconds: float = math.inf,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._load = load
        self._max_age = max_age_seconds
        self._retry = retry_seconds
        self._trust = trust_seconds
        self._clock = clock
        self._tokens: PushTokens | None = None
        self._refresh_at = 0.0
        self._read_at = 0.0

    def _accepted(self) -> PushTokens:
        now = time.monotonic()
        if self._tokens is not None and now < self._refresh_at:
            return self._tokens
        try:
            loaded = self._load()
        except Exception as exc:
            count("TokenRefreshFailures")
            if self._tokens is None:
                raise
            if now - self._read_at > self._trust:
                raise TokenTrustExpiredError(
                    f"the push token was last read {now - self._read_at:.0f} s ago and every read since failed"
                ) from exc
            self._refresh_at = now + min(self._retry, self._max_age)
            logger.warning(
                "push token refresh failed; the cached token stays in use",
                extra={"errorType": type(exc).__name__, "error": str(exc)[:300], "retryInSeconds": self._retry},
            )
            return self._tokens
        self._tokens = loaded if isinstance(loaded, PushTokens) else PushTokens(loaded)
        self._refresh_at = now + self._max_age
        self._read_at = now
        return self._tokens

    def match(self, presented: str) -> TokenMatch | None:
        """Which accepted token ``presented`` is (compared in constant time), or None."""
        tokens = self._accepted()
        if not presented:
            return None
        given = presented.encode("utf-8", "surrogatepass")
        # Both comparisons always run: the time taken says nothing about either token.
        is_current = _equal(given, tokens.current)
        is_previous = _equal(given, tokens.previous)
        if is_current:
            return "current"
        if is_previous and self._clock() < tokens.previous_until:
            return "previous"
        return None

    def matches(self, presented: str) -> bool:
        return self.match(presented) is not None


class SecretsManagerTokens:
    """Loads :class:`PushTokens` from a secret's ``AWSCURRENT`` and ``AWSPREVIOUS``
    versions. ``AWSPREVIOUS`` is read only while the overlap after the current version's
    ``CreatedDate`` lasts, so a secret not rotated lately costs one call per refresh.
    The client is created at the first load and kept (once per container)."""

    def __init__(
        self,
        secret_id: str,
        overlap_seconds: float,
        *,
        client_factory: Callable[[], Any] = secrets_client,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret_id = secret_id
        self._overlap = overlap_seconds
        self._client_factory = client_factory
        self._clock = clock
        self._client: Any = None

    def __call__(self) -> PushTokens:
        if self._client is None:
            self._client = self._client_factory()
        current = self._client.get_secret_value(SecretId=self._secret_id, VersionStage="AWSCURRENT")
        created = current.get("CreatedDate")
        previous_until = created.timestamp() + self._overlap if created is not None else 0.0
        previous = ""
        if self._clock() < previous_until:
            try:
                answer = self._client.get_secret_value(SecretId=self._secret_id, VersionStage="AWSPREVIOUS")
                previous = str(answer.get("SecretString") or "").strip()
            except ClientError as exc:
                # A secret that was never rotated has no previous version.
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
        return PushTokens(str(current.get("SecretString") or "").strip(), previous, previous_until)


def push_token_from_settings(settings: PushSettings) -> PushToken:
    if settings.push_token:
        # Local runs and tests: no CreatedDate, so PUSH_TOKEN_PREVIOUS is accepted while set.
        local = PushTokens(settings.push_token, settings.push_token_previous, math.inf)
        return PushToken(lambda: local, settings.push_token_max_age_seconds)
    overlap = settings.push_token_overlap_hours * 3600
    # A rotation is honoured within its overlap: a container that cannot read the secret
    # trusts its cached token no longer than that after its last read.
    return PushToken(
        SecretsManagerTokens(settings.push_token_secret_id, overlap),
        settings.push_token_max_age_seconds,
        trust_seconds=overlap,
    )
