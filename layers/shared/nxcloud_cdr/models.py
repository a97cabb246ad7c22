"""What every model of an NXCLOUD payload shares, as lenient as NXCLOUD is loose.

Each push kind's model is in its own module of :mod:`.payloads`, so that a function
builds only the model of the payloads it receives.

Every model accepts and keeps unknown fields (``extra="allow"``: they land in
``model_extra``), turns numbers sent as strings into numbers and numbers sent as
strings into strings, and reads ``null`` and ``""`` as "not set". A field whose value
cannot be read at all (``"duration": "abc"``) is a validation error: the receiver
answers 422 and keeps the body in quarantine.
"""

from __future__ import annotations

from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

# Whole numbers beyond this many digits are not NXCLOUD's integers; building one as an
# int from an exactly read number (1e999999) would take seconds.
_INT_DIGITS = 40
# The digits of the longest id a key can hold (:data:`.storable.MAX_ID_BYTES`).
_ID_DIGITS = 900


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, Decimal) and (not value.is_finite() or value.adjusted() >= _INT_DIGITS):
        raise ValueError("number out of range")
    if isinstance(value, str):
        value = value.strip()
        if value == "":
            return None
        # "6.0" is a whole number that pydantic's lax int parsing refuses.
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else value
    return value


def _none_to_empty(value: Any) -> Any:
    return "" if value is None else value


def _canonical_id(value: Any) -> Any:
    """An id NXCLOUD sent as a JSON number, as the text of that number's value: an
    integral value as its digits (``1e2``, ``100.0`` and ``100`` are all ``"100"``),
    any other in plain decimal (``1.50`` is ``"1.5"``). An id sent as text is kept
    exactly: ``"100.0"`` is not ``"100"``."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, int):
        return str(value)
    number = Decimal(repr(value)) if isinstance(value, float) else value
    if not number.is_finite():
        return str(value)
    if number == 0:
        return "0"
    # Its own digits' precision: normalising never rounds the value.
    exact = Context(prec=max(len(number.as_tuple().digits), 1), Emax=MAX_EMAX, Emin=MIN_EMIN)
    normal = number.normalize(exact)
    # Up to the longest id a key can hold, in plain decimal (1e40 and its 41 digits are
    # one id); beyond it no key can hold the digits anyway, and writing them is slow.
    return format(normal, "f") if abs(normal.adjusted()) < _ID_DIGITS else str(normal)


def _to_string_list(value: Any) -> Any:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


LooseInt = Annotated[int | None, BeforeValidator(_blank_to_none)]
LooseStr = Annotated[str, BeforeValidator(_none_to_empty)]
# A record's id: text, or a number made canonical (:func:`_canonical_id`).
IdStr = Annotated[str, BeforeValidator(_none_to_empty), BeforeValidator(_canonical_id)]
StrList = Annotated[list[str], BeforeValidator(_to_string_list)]
LooseFloat = Annotated[float | None, BeforeValidator(_blank_to_none)]


class NxModel(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, populate_by_name=True)
