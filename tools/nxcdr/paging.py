"""--limit and --cursor, which every listing takes: their types, and a page read with them."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from botocore.exceptions import ClientError, ParamValidationError
from nxcloud_cdr.lookups import LookupOffError, Page, decode_cursor

from tools.nxcdr.errors import OperatorError

# A page's most: more is no page (and DynamoDB refuses a Limit past a 32-bit number).
MAX_LIMIT = 10_000


def positive_int(text: str) -> int:
    """An argparse type: a whole number from 1 to :data:`MAX_LIMIT`."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"not a whole number from 1 to {MAX_LIMIT}: {text!r}")
    return value


def non_empty(text: str) -> str:
    """An argparse type: an id, number or name, which is never empty (DynamoDB's raw
    ValidationException otherwise)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def cursor_argument(text: str) -> str:
    """An argparse type: the text, once known to decode as a cursor."""
    try:
        decode_cursor(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a cursor: {text!r} (give the one the previous page of the same command printed)"
        ) from None
    return text


def read_page(arguments: argparse.Namespace, read: Callable[[], Page]) -> Page:
    """A page read with the --cursor given: a cursor of another listing (it decodes,
    but is not a position of this one) is one line, not a traceback or DynamoDB's
    ValidationException."""
    if not arguments.cursor:
        return read()
    try:
        return read()
    except LookupOffError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError, ParamValidationError):
        pass  # a position of another listing's shape
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ValidationException":
            raise
    raise OperatorError(
        f"--cursor {arguments.cursor} is not a cursor of this listing: give the one its previous page printed"
    )
