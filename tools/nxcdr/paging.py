"""--limit and --cursor, which every listing takes: their types, and a page read with them."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from botocore.exceptions import ClientError, ParamValidationError
from nxcloud_cdr.lookups import LookupOffError, Page, decode_cursor

from tools.nxcdr.errors import OperatorError


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of 1 or more: {text!r}")
    return value


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
