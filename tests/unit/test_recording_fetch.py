"""The recording download against a real HTTPS server on loopback (the stand-in for
NXCLOUD's recording storage): what is fetched, and what never is."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nxcloud_cdr.recordings.fetch import FetchError, FetchPolicy, audio_extension, check_link, open_recording
from nxcloud_cdr.recordings.upload import PART_BYTES

from devtools.recording_host import MP3_HEADER, RecordingHost, audio_bytes

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.fixture(scope="module")
def host() -> Iterator[RecordingHost]:
    with RecordingHost() as server:
        yield server


@pytest.fixture
def policy(host: RecordingHost) -> FetchPolicy:
    """The stand-in's host allowed, and its loopback address as an exception to the
    public-addresses-only rule (as `make local` configures it)."""
    return FetchPolicy(hosts=("localhost",), allowed_networks=LOOPBACK, ca_file=host.ca_file, timeout_s=2.0)


def fetch(url: str, policy: FetchPolicy, size: int = 64 * 1024) -> tuple[bytes, str, list[int]]:
    with open_recording(url, policy) as download:
        pieces = list(download.chunks(size))
    return b"".join(pieces), download.extension, [len(piece) for piece in pieces]


def test_a_recording_is_fetched_whole_with_its_type(host: RecordingHost, policy: FetchPolicy):
    body = MP3_HEADER + b"\x00" * 5000
    data, extension, _ = fetch(host.add("pns/small.mp3", body=body), policy)
    assert data == body
    assert extension == "mp3"


def test_a_large_recording_streams_in_bounded_pieces(host: RecordingHost, policy: FetchPolicy):
    size = 20 * 1024 * 1024 + 17
    url = host.add("pns/large.mp3", size=size)
    data, _, pieces = fetch(url, policy, size=1024 * 1024)
    assert len(data) == size
    assert max(pieces) == 1024 * 1024
    assert hashlib.sha256(data).digest() == hashlib.sha256(b"".join(audio_bytes(size, "/pns/large.mp3"))).digest()


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ({"status": 404, "content_type": "text/html", "body": b"missing"}, "http"),
        ({"status": 503, "content_type": "text/plain", "body": b"busy"}, "http"),
        ({"content_type": "text/html", "body": b"<html>login</html>"}, "not_audio"),
        ({"content_type": "application/octet-stream", "body": b"<html>an error page</html>"}, "not_audio"),
        ({"content_type": "audio/mpeg", "body": b""}, "empty"),
        ({"delay": 3.0, "body": MP3_HEADER}, "timeout"),
        ({"size": 4096, "length": 9000}, "interrupted"),
    ],
    ids=["404", "503", "html", "octet-stream-html", "empty", "slow", "cut-short"],
)
def test_answers_that_are_no_recording_fail_and_may_be_retried(
    host: RecordingHost, policy: FetchPolicy, route: dict[str, object], reason: str
):
    url = host.add(f"bad/{reason}-{len(host.routes)}.mp3", **route)
    with pytest.raises(FetchError) as caught:
        fetch(url, policy)
    assert caught.value.reason == reason
    assert caught.value.retryable


@pytest.mark.parametrize(
    "route",
    [{"size": 64 * 1024 * 40, "trickle": 0.1}, {"delay": 4.0, "size": 1000}],
    ids=["body-a-piece-at-a-time", "headers-late"],
)
def test_a_download_is_cut_off_at_its_deadline_however_the_host_stalls(
    host: RecordingHost, policy: FetchPolicy, route: dict[str, object]
):
    """The per-read timeout (2 s here) never fires: each piece comes in time. The
    download's own limit does, on time."""
    url = host.add(f"slow/{len(host.routes)}.mp3", **route)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch(url, replace(policy, max_seconds=0.5, timeout_s=5.0), size=PART_BYTES)
    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 2.0


def test_links_with_non_ascii_or_spaces_are_fetched(host: RecordingHost, policy: FetchPolicy):
    body = MP3_HEADER + b"named in Chinese"
    host.add("/cc/%E5%BD%95%E9%9F%B3%20(1).mp3", body=body)
    assert fetch(host.url("cc/录音 (1).mp3"), policy)[0] == body
    # A redirect to such a path too.
    url = host.add("cc/moved.mp3", status=302, location="/cc/录音 (1).mp3", body=b"")
    assert fetch(url, policy)[0] == body


def test_untyped_audio_is_recognised_by_its_first_bytes(host: RecordingHost, policy: FetchPolicy):
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 100
    _, extension, _ = fetch(host.add("cc/untyped", content_type="application/octet-stream", body=wav), policy)
    assert extension == "wav"
    assert audio_extension("https://x/a.mp3", "audio/x-custom", b"....") == "mp3"
    assert audio_extension("https://x/a", "", b"\xff\xfb\x90\x00") == "mp3"
    assert audio_extension("https://x/a.mp3", "text/plain", MP3_HEADER) is None


def test_over_the_size_limit_is_not_retried(host: RecordingHost, policy: FetchPolicy):
    url = host.add("big/declared.mp3", size=300_000)
    with pytest.raises(FetchError) as caught:
        fetch(url, replace(policy, max_bytes=100_000))
    assert (caught.value.reason, caught.value.retryable) == ("too_large", False)
    # A host that does not say the length up front is stopped once it passes the limit.
    url = host.add("big/undeclared.mp3", size=300_000, length=-1)
    with pytest.raises(FetchError) as caught:
        fetch(url, replace(policy, max_bytes=100))
    assert caught.value.reason == "too_large"


@pytest.mark.parametrize(
    "length",
    ["\u00b2", "-1", "1e3", "+7", "0x10", "7 7", "", "6, 7", "7\r\nContent-Length: 8"],
    ids=["superscript-two", "negative", "exponent", "plus", "hex", "two-numbers", "empty", "list", "two-headers"],
)
def test_a_malformed_content_length_is_a_failed_download(host: RecordingHost, policy: FetchPolicy, length: str):
    """Issue 19, item 7: the fetcher's own error (which the archiver records and
    retries, as a 5xx), never a bare ValueError, whatever the header holds."""
    url = host.add(f"length/{len(host.routes)}.mp3", body=MP3_HEADER + b"7", length=length)
    with pytest.raises(FetchError) as caught:
        fetch(url, replace(policy, timeout_s=0.5))
    assert (caught.value.reason, caught.value.retryable) == ("http", True)
    assert "Content-Length" in str(caught.value)


def test_a_content_length_repeated_or_zero_padded_is_the_length_and_an_absurd_one_too_large(
    host: RecordingHost, policy: FetchPolicy
):
    body = MP3_HEADER + b"7"
    for length in ("11, 11", "11\r\nContent-Length: 11", "0011"):
        assert fetch(host.add(f"length/ok-{len(host.routes)}.mp3", body=body, length=length), policy)[0] == body
    url = host.add("length/absurd.mp3", body=body, length="9" * 5000)  # more digits than int() takes
    with pytest.raises(FetchError) as caught:
        fetch(url, policy)
    assert (caught.value.reason, caught.value.retryable) == ("too_large", False)


def test_a_redirect_on_the_list_is_followed(host: RecordingHost, policy: FetchPolicy):
    target = host.add("moved/there.mp3", body=MP3_HEADER + b"1")
    url = host.add("moved/here.mp3", status=302, location="/moved/there.mp3", body=b"")
    assert fetch(url, policy)[0] == MP3_HEADER + b"1"
    assert host.routes["/moved/there.mp3"].hits == 1
    assert target


def test_a_redirect_off_the_list_is_never_followed(host: RecordingHost, policy: FetchPolicy):
    host.add("secret/metadata", body=MP3_HEADER)
    off_list = host.url("secret/metadata", host="127.0.0.1")  # the same server, by a name not on the list
    url = host.add("moved/away.mp3", status=301, location=off_list, body=b"")
    with pytest.raises(FetchError) as caught:
        fetch(url, policy)
    assert (caught.value.reason, caught.value.retryable) == ("refused", False)
    assert host.routes["/secret/metadata"].hits == 0


def test_redirects_are_bounded(host: RecordingHost, policy: FetchPolicy):
    url = host.add("loop.mp3", status=302, location="/loop.mp3", body=b"")
    with pytest.raises(FetchError) as caught:
        fetch(url, policy)
    assert caught.value.reason == "redirects"
    assert host.routes["/loop.mp3"].hits == policy.max_redirects + 1


def test_a_host_off_the_list_is_never_contacted(host: RecordingHost, policy: FetchPolicy):
    host.add("offlist.mp3", body=MP3_HEADER)
    for url in (host.url("offlist.mp3", host="127.0.0.1"), "https://evil.example/a.mp3"):
        with pytest.raises(FetchError) as caught:
            fetch(url, policy)
        assert caught.value.reason == "refused"
    assert host.routes["/offlist.mp3"].hits == 0


def test_a_private_address_is_never_contacted(host: RecordingHost, policy: FetchPolicy):
    """The stand-in is on loopback: without the exception `make local` adds, its
    allowed name resolves to a private address and is refused before any connection."""
    host.add("private.mp3", body=MP3_HEADER)
    with pytest.raises(FetchError) as caught:
        fetch(host.url("private.mp3"), replace(policy, allowed_networks=()))
    assert caught.value.reason == "refused"
    assert host.routes["/private.mp3"].hits == 0


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "172.16.0.9", "192.168.1.1", "127.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
     "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "224.0.0.1", "255.255.255.255",
     "64:ff9b::a9fe:a9fe", "64:ff9b:1::a9fe:a9fe", "::a9fe:a9fe", "::ffff:0:a9fe:a9fe", "fec0::1",
     "2002:a9fe:a9fe::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2"],
)  # fmt: skip
def test_every_non_public_address_is_refused(address: str):
    policy = FetchPolicy(hosts=("*.nxcloud.com",), resolver=lambda host, port: ["203.0.113.0", address][1:])
    with pytest.raises(FetchError) as caught:
        check_link("https://remote.record.nxcloud.com/a.mp3", policy)
    assert caught.value.reason == "refused"
    # One private address among public ones is enough to refuse the host (DNS answers rotate).
    mixed = replace(policy, resolver=lambda host, port: ["8.8.8.8", address])
    with pytest.raises(FetchError):
        check_link("https://remote.record.nxcloud.com/a.mp3", mixed)


def test_the_address_checked_is_the_one_connected_to():
    policy = FetchPolicy(resolver=lambda host, port: ["8.8.4.4"])
    target = check_link("https://remote.record.nxcloud.com/pns/a.mp3?x=1", policy)
    assert (target.host, target.port, target.path, target.address) == (
        "remote.record.nxcloud.com",
        443,
        "/pns/a.mp3?x=1",
        "8.8.4.4",
    )
    # A request line holds no raw non-ASCII or space: encoded as a browser would, escapes kept.
    target = check_link("https://remote.record.nxcloud.com/录音/a b%2F.mp3?n=张", policy)
    assert target.path == "/%E5%BD%95%E9%9F%B3/a%20b%2F.mp3?n=%E5%BC%A0"


def test_only_the_https_port_unless_the_local_exception():
    policy = FetchPolicy(resolver=lambda host, port: ["8.8.4.4"])
    for port in (22, 80, 8443, 6379):
        with pytest.raises(FetchError) as caught:
            check_link(f"https://remote.record.nxcloud.com:{port}/a.mp3", policy)
        assert caught.value.reason == "refused"


@pytest.mark.parametrize(
    "url",
    [
        "http://remote.record.nxcloud.com/a.mp3",
        "ftp://remote.record.nxcloud.com/a.mp3",
        "file:///etc/passwd",
        "//remote.record.nxcloud.com/a.mp3",
        "https://user:pw@remote.record.nxcloud.com/a.mp3",
        "https://remote.record.nxcloud.com.evil.example/a.mp3",
        "https://evilnxcloud.com/a.mp3",
        "https://nxcloud.com@evil.example/a.mp3",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/a.mp3",
        "https://remote.record.nxcloud.com:99999/a.mp3",
        "*********.mp3",
    ],
)
def test_links_the_policy_refuses(url: str):
    policy = FetchPolicy(resolver=lambda host, port: ["8.8.8.8"])
    with pytest.raises(FetchError) as caught:
        check_link(url, policy)
    assert caught.value.reason == "refused"


def test_allow_list_patterns():
    policy = FetchPolicy(hosts=("remote.record.nxcloud.com", "*.nxcloud.com"))
    assert policy.host_allowed("remote.record.nxcloud.com")
    assert policy.host_allowed("REMOTE.record.nxcloud.com.")
    assert policy.host_allowed("cc.nxcloud.com")
    assert not policy.host_allowed("nxcloud.com")
    assert not policy.host_allowed("evilnxcloud.com")
    assert not policy.host_allowed("nxcloud.com.evil.example")


def test_a_certificate_not_trusted_is_a_failure(host: RecordingHost, policy: FetchPolicy):
    url = host.add("tls.mp3", body=MP3_HEADER)
    with pytest.raises(FetchError) as caught:
        fetch(url, replace(policy, ca_file=None))
    assert caught.value.reason in ("tls", "unreachable")
    assert host.routes["/tls.mp3"].hits == 0


@settings(max_examples=500, deadline=None)
@given(
    url=st.one_of(
        st.text(max_size=80), st.from_regex(r"https?://[a-z0-9.\-\[\]:@%]{0,30}(/[^\s]{0,20})?", fullmatch=True)
    )
)
def test_any_link_is_either_refused_or_safe(url: str):
    """Whatever a push body holds: a FetchError, or a public address of an allowed host."""
    policy = FetchPolicy(
        hosts=("*.nxcloud.com", "localhost"), resolver=lambda host, port: ["10.0.0.1"] if "1" in host else ["8.8.8.8"]
    )
    try:
        target = check_link(url, policy)
    except FetchError:
        return
    assert policy.host_allowed(target.host)
    assert target.address == "8.8.8.8"
    assert url.lower().startswith("https://")


def test_the_deadline_holds_through_a_slow_handshake_after_a_redirect(host: RecordingHost, tmp_path):
    """A first hop slow to redirect, a second slow in its TLS handshake and then
    sending its headers a byte at a time: each step within the per-read timeout, the
    download cut at its own deadline all the same."""
    import socket
    import ssl
    import threading

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    host.ca.issue_cert("localhost").configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    hops = []

    def serve(raw: socket.socket) -> None:
        hops.append(raw)
        with contextlib.suppress(OSError):
            if len(hops) == 2:
                time.sleep(1.0)  # a slow handshake on the redirect's hop
            connection = context.wrap_socket(raw, server_side=True)
            connection.recv(65536)
            if len(hops) == 1:
                time.sleep(1.2)
                connection.sendall(f"HTTP/1.1 302 Found\r\nLocation: https://localhost:{port}/b.mp3\r\n\r\n".encode())
                return
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nX-Padding: " + b"a" * 40:
                connection.sendall(bytes([byte]))
                time.sleep(0.25)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                threading.Thread(target=serve, args=(listener.accept()[0],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    policy = FetchPolicy(
        hosts=("localhost",), allowed_networks=LOOPBACK, ca_file=host.ca_file, timeout_s=5, max_seconds=2
    )
    started = time.monotonic()
    try:
        with pytest.raises(FetchError) as caught:
            fetch(f"https://localhost:{port}/a.mp3", policy)
    finally:
        listener.close()
    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 3.0


def test_failed_downloads_leave_no_timer_behind(host: RecordingHost, policy: FetchPolicy):
    import threading

    redirect_off_list = host.add("leak/away.mp3", status=302, location="https://evil.example/x.mp3", body=b"")
    nothing_listens = host.url("x.mp3").replace(f":{host.port}/", ":1/")
    before = threading.active_count()
    for link in [redirect_off_list, nothing_listens] * 10:
        with pytest.raises(FetchError):
            fetch(link, policy)
    assert threading.active_count() <= before + 2  # the stand-in's own request threads at most


def test_a_connection_that_never_completes_ends_by_the_deadline_too(host: RecordingHost, policy: FetchPolicy):
    """After a slow redirect, a host that never accepts (its queue full: SYNs dropped):
    no socket for the watchdog to cut yet, the connection attempt itself is bounded."""
    import socket

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    port = hole.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    url = host.add("hole/r.mp3", status=302, delay=1.5, location=f"https://localhost:{port}/x.mp3", body=b"")
    started = time.monotonic()
    try:
        with pytest.raises(FetchError) as caught:
            fetch(url, replace(policy, timeout_s=6.0, max_seconds=2.0))
    finally:
        for sock in [hole, *fillers]:
            sock.close()
    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 3.0
