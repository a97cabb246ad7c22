"""Phone number normalisation for lookups (the original is always kept beside it)."""

from __future__ import annotations

import re

_NON_DIGITS = re.compile(r"\D")
_DIALABLE = re.compile(r"^[\d\s()+\-.]+$")


def normalise_number(value: str | None) -> str | None:
    """The lookup key of a number: digits only, no ``+``; ``None`` when there is none.

    NXCLOUD numbers are usually bare digits with the country code, sometimes with a
    leading ``+``. A callee can also be a SIP URI (``NX09445G000025@43.134.225.234:5060``):
    its user part is the key, digits only when it is a dialable number, otherwise kept
    as it is (an agent id such as ``NX09445G000025``), because stripping its letters
    would make a number that never existed.
    """
    if value is None:
        return None
    text = value.strip()
    if text.lower().startswith(("sip:", "sips:", "tel:")):
        text = text.split(":", 1)[1]
    if "@" in text:
        text = text.split("@", 1)[0]
    if not text:
        return None
    if _DIALABLE.match(text):
        digits = _NON_DIGITS.sub("", text)
        return digits or None
    return text
