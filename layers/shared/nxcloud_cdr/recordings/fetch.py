"""A recording download that cannot be turned against the stack (no SSRF).

A link comes from a push body, which anyone who learns a push URL can send. So a link
is followed only when:

- it is ``https`` (certificate and host name checked), on a host of the allow-list
  (``remote.record.nxcloud.com`` or ``*.nxcloud.com`` forms);
- every address its host resolves to is public: private, loopback, link-local (the
  instance metadata address among them), multicast and reserved addresses are refused.
  The connection goes to the address that was checked (no second lookup a DNS answer
  could change in between);
- each redirect passes the same checks, at most :attr:`FetchPolicy.max_redirects`.

Standard library only (``http.client``): no package in the archiver's cold start.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from ..recording_links import REQUEST_PATH_SAFE, request_path

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

# IPv6 prefixes that carry an IPv4 address: refused, whatever the address inside.
_EMBEDDING_IPV4 = tuple(
    ipaddress.IPv6Network(prefix)
    for prefix in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32")
)
HTTPS_PORT = 443
# What is read at once (one system call at most): the watchdog and the limits are
# checked between reads. And what is read before the type is decided.
_READ_BYTES = 64 * 1024
_SNIFF_BYTES = 64
# The same rule tells which links name one object (:func:`..recording_links.object_of`).
_PATH_SAFE = REQUEST_PATH_SAFE
# What a Content-Length holds (RFC 9110: 1*DIGIT, ASCII digits only).
_DIGITS = re.compile(r"[0-9]+")
# Hosts NXCLOUD's documents show recording links on (seeds/pns-call-result-push.md).
DEFAULT_HOSTS = ("remote.record.nxcloud.com", "*.nxcloud.com")
USER_AGENT = "nxcloud-cdr-recording-archiver"
# Content types that are no answer about the content: the first bytes decide.
_UNTYPED = {"", "application/octet-stream", "binary/octet-stream", "application/x-download", "application/download"}
# Magic numbers of the audio formats call platforms record in, and their extension.
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"ID3", 0, "mp3"),
    (b"RIFF", 0, "wav"),
    (b"OggS", 0, "ogg"),
    (b"#!AMR", 0, "amr"),
    (b"fLaC", 0, "flac"),
    (b"ftyp", 4, "m4a"),
)
_TYPE_EXTENSIONS = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/amr": "amr",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "aac",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/gsm": "gsm",
}
AUDIO_EXTENSIONS = frozenset({*_TYPE_EXTENSIONS.values(), "wma"})


class FetchError(Exception):
    """A recording that could not be fetched. ``retryable``: whether trying again
    later can help (a 404 before NXCLOUD's storage has the file, a timeout) or not
    (a link the policy refuses, a file over the size limit)."""

    def __init__(self, reason: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable


def refused(message: str) -> FetchError:
    return FetchError("refused", message, retryable=False)


@dataclass(frozen=True)
class FetchPolicy:
    hosts: tuple[str, ...] = DEFAULT_HOSTS
    max_bytes: int = 200 * 1024 * 1024
    timeout_s: float = 20.0
    # The whole download: a host that trickles a byte at a time is cut off too.
    max_seconds: float = 120.0
    max_redirects: int = 3
    # Addresses fetched although not public: none in a deployed stack (the local stack
    # allows its loopback stand-in).
    allowed_networks: tuple[Network, ...] = ()
    # A CA bundle to trust instead of the system's (the local stand-in's).
    ca_file: str | None = None
    resolver: Resolver | None = field(default=None, compare=False)

    def host_allowed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for entry in self.hosts:
            pattern = entry.strip().lower().rstrip(".")
            if pattern.startswith("*.") and host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
            if host == pattern:
                return True
        return False

    def address_allowed(self, address: Address) -> bool:
        if self.exception(address):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            elif address.is_site_local or any(address in network for network in _EMBEDDING_IPV4):
                # An IPv4 address in IPv6 clothes (NAT64, 6to4, Teredo, compatible,
                # SIIT) could be any IPv4 address, 169.254.169.254 among them.
                return False
        return address.is_global and not address.is_multicast

    def exception(self, address: Address) -> bool:
        """An address fetched although not public (the local stand-in's), on any port."""
        return any(address in network for network in self.allowed_networks)


def parse_networks(text: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int
    path: str
    address: str


def _addresses(host: str, port: int, policy: FetchPolicy) -> list[str]:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [host]
    try:
        addresses = (policy.resolver or _resolve)(host, port)
    except (OSError, UnicodeError) as exc:
        raise FetchError("unreachable", f"host {host} does not resolve: {exc}", retryable=True) from exc
    if not addresses:
        raise FetchError("unreachable", f"host {host} does not resolve", retryable=True)
    return addresses


def check_link(url: str, policy: FetchPolicy) -> Target:
    """The address a link may be fetched from; :class:`FetchError` (``refused``) when
    the policy does not allow it."""
    try:
        parts = urlsplit(url)
        port = parts.port or 443
        host = parts.hostname or ""
    except ValueError as exc:
        raise refused(f"not a URL: {exc}") from exc
    if parts.scheme.lower() != "https":
        raise refused(f"only https links are fetched, not {parts.scheme or 'a relative link'}")
    if parts.username or parts.password:
        raise refused("links with credentials are not fetched")
    if not host:
        raise refused("the link has no host")
    try:
        # The name the resolver and the certificate check will use (IDNA maps some
        # Unicode forms onto ASCII ones): the allow-list is checked on it.
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise refused("the link's host is not a valid host name") from exc
    if not policy.host_allowed(host):
        raise refused(f"host {host} is not on the allow-list (RecordingHosts)")
    addresses = _addresses(host, port, policy)
    checked = [ipaddress.ip_address(text.split("%", 1)[0]) for text in addresses]
    for address in checked:
        if not policy.address_allowed(address):
            raise refused(f"host {host} resolves to a non-public address")
    if port != HTTPS_PORT and not all(policy.exception(address) for address in checked):
        raise refused(f"only port {HTTPS_PORT} is fetched, not {port}")
    # As a browser sends it: characters a request line cannot hold percent-encoded
    # (a file name in Chinese, a space), escapes already there kept.
    path = request_path(parts.path)
    if parts.query:
        path += "?" + quote(parts.query, safe=_PATH_SAFE)
    return Target(url, host, port, path, addresses[0])


class _PinnedConnection(http.client.HTTPSConnection):
    """HTTPS to the address checked, with the host's name for SNI and the certificate."""

    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext, deadline: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._deadline = deadline
        self._address = target.address
        self._context = context
        # The socket from before the TLS handshake on, for the watchdog to cut.
        self.raw: socket.socket | None = None
        self.cut = False

    def connect(self) -> None:
        # A connection attempt the watchdog cannot cut (no socket yet): bounded by the deadline.
        remaining = max(self._deadline - time.monotonic(), 0.01)
        plain = socket.create_connection((self._address, self.port), min(self.timeout or remaining, remaining))
        plain.settimeout(self.timeout)
        # The handshake after the TLS socket is in place, so that the watchdog can cut it.
        tls = self._context.wrap_socket(plain, server_hostname=self.host, do_handshake_on_connect=False)
        self.raw = self.sock = tls
        if self.cut:  # the deadline passed while it connected
            raise TimeoutError("the download's deadline passed")
        tls.do_handshake()


def _context(policy: FetchPolicy) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=policy.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _Watchdog:
    """Cuts the connection at the download's deadline, from a timer: a host that
    answers a byte at a time (its headers or its body) cannot hold the archiver past it,
    whatever the per-read timeout."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.fired = False
        self._timer: threading.Timer | None = None
        self._connection: _PinnedConnection | None = None

    def watch(self, connection: _PinnedConnection) -> None:
        self.cancel()
        self._connection = connection
        self._timer = threading.Timer(max(self.deadline - time.monotonic(), 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        connection = self._connection
        if connection is None:
            return
        connection.cut = True
        if connection.raw is not None:
            # The plain socket's shutdown: the TLS object stays with the reading thread,
            # whose read (or handshake) returns at once.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(connection.raw, socket.SHUT_RDWR)

    def check(self) -> None:
        if self.fired or time.monotonic() > self.deadline:
            raise self.timeout()

    def timeout(self) -> FetchError:
        return FetchError("timeout", f"the download took longer than {self.seconds:g} s", retryable=True)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


@dataclass
class Download:
    """An open answer: read it with :meth:`chunks` (bounded memory), then close it."""

    url: str
    content_type: str
    length: int | None
    extension: str
    first: bytes
    _response: http.client.HTTPResponse
    _connection: http.client.HTTPSConnection
    _max_bytes: int
    _watchdog: _Watchdog

    def _read(self, limit: int) -> bytes:
        """At most ``limit`` bytes, from at most one read of the socket."""
        self._watchdog.check()
        try:
            data = self._response.read1(limit)
        except (OSError, http.client.HTTPException) as exc:
            if self._watchdog.fired:
                raise self._watchdog.timeout() from exc
            raise FetchError("interrupted", f"the download failed midway: {exc}", retryable=True) from exc
        if self._watchdog.fired:
            raise self._watchdog.timeout()
        return data

    def chunks(self, size: int) -> Iterator[bytes]:
        """The body in pieces of at most ``size`` bytes; :class:`FetchError` if it
        grows beyond the limit, takes too long or the connection fails midway."""
        total = len(self.first)
        pieces = [self.first] if self.first else []
        filled = total
        while True:
            more = self._read(min(_READ_BYTES, size - filled))
            if more:
                total += len(more)
                if total > self._max_bytes:
                    raise FetchError("too_large", f"the recording is over {self._max_bytes} bytes", retryable=False)
                pieces.append(more)
                filled += len(more)
            if filled == size or (not more and filled):
                chunk = b"".join(pieces)
                pieces.clear()
                filled = 0
                yield chunk
            if not more:
                break
        if self.length is not None and total != self.length:
            raise FetchError("interrupted", f"got {total} of {self.length} bytes", retryable=True)

    def close(self) -> None:
        self._watchdog.cancel()
        self._connection.close()

    def __enter__(self) -> Download:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def audio_extension(url: str, content_type: str, first: bytes) -> str | None:
    """The file's extension when it is audio (by its type, or its first bytes when
    the type says nothing), else None."""
    sniffed = next((ext for magic, at, ext in _MAGIC if first[at : at + len(magic)] == magic), None)
    if sniffed is None and len(first) >= 2 and first[0] == 0xFF and first[1] & 0xE0 == 0xE0:
        sniffed = "mp3"  # an MPEG audio frame header
    path = urlsplit(url).path
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if content_type.startswith("audio/"):
        return _TYPE_EXTENSIONS.get(content_type) or (suffix if suffix in AUDIO_EXTENSIONS else sniffed or "audio")
    if content_type in _UNTYPED and sniffed:
        return suffix if suffix in AUDIO_EXTENSIONS else sniffed
    return None


def open_recording(url: str, policy: FetchPolicy) -> Download:
    """Open the recording at ``url`` (redirects followed, each checked). The caller
    closes the :class:`Download`."""
    watchdog = _Watchdog(policy.max_seconds)
    try:
        return _follow(url, policy, watchdog)
    except BaseException:
        watchdog.cancel()
        raise


def _follow(url: str, policy: FetchPolicy, watchdog: _Watchdog) -> Download:
    context = _context(policy)
    current = url
    for _ in range(policy.max_redirects + 1):
        target = check_link(current, policy)
        watchdog.check()
        connection = _PinnedConnection(target, policy.timeout_s, context, watchdog.deadline)
        watchdog.watch(connection)
        try:
            connection.request("GET", target.path, headers={"User-Agent": USER_AGENT, "Accept": "audio/*, */*;q=0.1"})
            response = connection.getresponse()
            watchdog.check()
        except FetchError:
            connection.close()
            raise
        except Exception as exc:
            connection.close()
            if watchdog.fired:
                raise watchdog.timeout() from exc
            raise _connection_error(exc, target, policy) from exc
        if response.status in (301, 302, 303, 307, 308):
            location = response.getheader("Location") or ""
            with contextlib.suppress(UnicodeError):  # http.client reads headers as Latin-1; servers send UTF-8
                location = location.encode("latin-1").decode("utf-8")
            connection.close()
            if not location:
                raise FetchError("http", f"HTTP {response.status} without a Location", retryable=True)
            current = urljoin(current, location)
            continue
        try:
            return _opened(current, response, connection, policy, watchdog)
        except BaseException:
            connection.close()
            raise
    raise FetchError("redirects", f"more than {policy.max_redirects} redirects", retryable=False)


def _connection_error(exc: Exception, target: Target, policy: FetchPolicy) -> FetchError:
    if isinstance(exc, TimeoutError):
        return FetchError("timeout", f"no answer from {target.host} in {policy.timeout_s:g} s", retryable=True)
    if isinstance(exc, ssl.SSLError):
        return FetchError("tls", f"TLS with {target.host} failed: {exc.reason or exc}", retryable=True)
    if isinstance(exc, OSError | http.client.HTTPException):
        return FetchError("unreachable", f"{target.host}: {exc}", retryable=True)
    # Anything else (a header http.client refuses to send, say) is about the link.
    return refused(f"the link cannot be requested: {type(exc).__name__}: {str(exc)[:200]}")


def _content_length(header: str | None, policy: FetchPolicy) -> int | None:
    """The length a ``Content-Length`` header declares (None without one), checked
    against the limit. Anything but ASCII digits (``²``, ``-1``, ``1e3``, empty) or
    values that disagree (``10, 20``: two headers, joined) is a :class:`FetchError`,
    as a 5xx is (the host's fault, which may pass); the same value repeated is that
    value (RFC 9110, 8.6)."""
    if header is None:
        return None
    values = {value.strip(" \t") for value in header.split(",")}
    value = values.pop() if len(values) == 1 else ""
    if not _DIGITS.fullmatch(value):
        raise FetchError("http", f"malformed Content-Length: {header[:40]!r}", retryable=True)
    significant = value.lstrip("0") or "0"
    # Compared as text first: no int() of thousands of digits (which Python refuses).
    if len(significant) > len(str(policy.max_bytes)) or int(significant) > policy.max_bytes:
        shown = significant if len(significant) <= 20 else significant[:20] + "..."
        raise FetchError("too_large", f"the recording is {shown} bytes, over {policy.max_bytes}", retryable=False)
    return int(significant)


def _opened(
    url: str,
    response: http.client.HTTPResponse,
    connection: http.client.HTTPSConnection,
    policy: FetchPolicy,
    watchdog: _Watchdog,
) -> Download:
    if response.status != 200:
        # 404: NXCLOUD's storage may not have the file yet. 5xx: theirs to fix.
        raise FetchError("http", f"HTTP {response.status} from {urlsplit(url).hostname}", retryable=True)
    length = _content_length(response.getheader("Content-Length"), policy)
    content_type = _media_type(response.getheader("Content-Type"))
    download = Download(
        url, "", length, "", b"", response, connection, policy.max_bytes, watchdog
    )  # type and extension once its first bytes are read
    first = b""
    while len(first) < _SNIFF_BYTES:
        more = download._read(_SNIFF_BYTES - len(first))
        if not more:
            break
        first += more
    if not first:
        raise FetchError("empty", "the recording is empty", retryable=True)
    extension = audio_extension(url, content_type, first)
    if extension is None:
        # A page in place of the file (an error page answered 200, say): retried, since
        # storage may answer the file later.
        raise FetchError("not_audio", f"not audio: {content_type or 'no content type'}", retryable=True)
    download.content_type = content_type or "application/octet-stream"
    download.extension = extension
    download.first = first
    return download
