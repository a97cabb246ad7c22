"""What every DynamoDB call of the store shares: the error that means a write was not
confirmed (the caller must not acknowledge), and the conditional write."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError


class StoreError(Exception):
    """The store did not confirm a write: the caller must not acknowledge the push."""


def is_condition_failure(exc: ClientError) -> bool:
    """A conditional write that DynamoDB refused because its condition did not hold, or
    a transaction it cancelled (a condition, a conflict with another writer): either
    way nothing was written, and the writer reads again or goes one item at a time."""
    code = exc.response.get("Error", {}).get("Code")
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


def conditional(
    call: Callable[..., Any], *, refused: Callable[[ClientError], Exception | None] = lambda exc: None, **arguments: Any
) -> bool:
    """A conditional write: True when it was made, False when its condition did not
    hold. :class:`StoreError` when the store did not answer, or ``refused``'s exception
    for an error that is about the request, not the store."""
    try:
        call(**arguments)
    except ClientError as exc:
        if is_condition_failure(exc):
            return False
        raise refused(exc) or StoreError(str(exc)) from exc
    except BotoCoreError as exc:
        raise StoreError(str(exc)) from exc
    return True


# Tries of a batch call (BatchWriteItem, BatchGetItem) with what DynamoDB left unprocessed.
_BATCH_ATTEMPTS = 8


def until_processed(call: Any, request: dict[str, Any], unprocessed: str, what: str) -> Iterator[dict[str, Any]]:
    """Each response of a batch call, sent again with what DynamoDB left unprocessed
    (backing off exponentially, as AWS asks) until nothing is left."""
    for attempt in range(_BATCH_ATTEMPTS):
        response: dict[str, Any] = call(RequestItems=request)
        yield response
        request = dict(response.get(unprocessed) or {})
        if not request:
            return
        time.sleep(min(0.05 * 2**attempt, 2.0))
    raise StoreError(f"DynamoDB left {what} after {_BATCH_ATTEMPTS} attempts")
