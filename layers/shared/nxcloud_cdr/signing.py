"""NXCLOUD request signing (the "API Interface Call Convention").

    sign = lowercase_hex(HASH("accessKey=..&action=..&bizType=..&ts=.." + "&body=" + body + "&accessSecret=" + secret))

The body is signed as the exact text sent: serialise once, sign that string, send that
string. Usable from your own code::

    from nxcloud_cdr.signing import signed_headers
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    headers = signed_headers("AK", "SECRET", action="cc", biz_type="8", body=body)
    requests.post(url, data=body.encode("utf-8"), headers=headers | {"Content-Type": "application/json"})
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

ALGORITHMS = ("md5", "sha256")
SIGNED_HEADERS = ("accessKey", "action", "bizType", "ts")


def string_to_sign(access_key: str, action: str, biz_type: str, ts: str, body: str, access_secret: str) -> str:  # noqa: PLR0917
    headers = {"accessKey": access_key, "action": action, "bizType": biz_type, "ts": ts}
    # Sorted by name in ASCII order, values not URL-encoded; `sign` and `algorithm` are not signed.
    text = "&".join(f"{name}={headers[name]}" for name in sorted(headers))
    if body:
        text += f"&body={body}"
    return f"{text}&accessSecret={access_secret}"


def sign(
    access_key: str,
    access_secret: str,
    *,
    action: str,
    biz_type: str,
    ts: str | int,
    body: str = "",
    algorithm: str = "md5",
) -> str:
    """The ``sign`` header value (lowercase hex)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, not {algorithm!r}")
    text = string_to_sign(access_key, action, biz_type, str(ts), body, access_secret)
    return hashlib.new(algorithm, text.encode("utf-8")).hexdigest()


def signed_headers(
    access_key: str,
    access_secret: str,
    *,
    action: str,
    biz_type: str,
    body: str = "",
    ts_ms: int | None = None,
    algorithm: str = "md5",
) -> dict[str, str]:
    """Every header a signed call needs. ``ts_ms`` defaults to now: NXCLOUD refuses a
    ``ts`` more than 60 s from its clock (code 1004), so sign each attempt afresh."""
    ts = str(ts_ms if ts_ms is not None else int(time.time() * 1000))
    headers = {
        "accessKey": access_key,
        "action": action,
        "bizType": biz_type,
        "ts": ts,
        "sign": sign(
            access_key, access_secret, action=action, biz_type=biz_type, ts=ts, body=body, algorithm=algorithm
        ),
    }
    if algorithm != "md5":
        headers["algorithm"] = algorithm
    return headers


def verify(headers: Mapping[str, str], body: str, access_secret: str) -> bool:
    """Whether ``headers`` carry a valid signature of ``body`` (header names are matched
    case-insensitively, as HTTP servers may change their case)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        values = {name: lowered[name.lower()] for name in (*SIGNED_HEADERS, "sign")}
    except KeyError:
        return False
    algorithm = lowered.get("algorithm", "md5").lower()
    if algorithm not in ALGORITHMS:
        return False
    expected = sign(
        values["accessKey"],
        access_secret,
        action=values["action"],
        biz_type=values["bizType"],
        ts=values["ts"],
        body=body,
        algorithm=algorithm,
    )
    return hmac.compare_digest(expected, values["sign"].lower())
