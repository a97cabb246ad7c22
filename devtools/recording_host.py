"""A stand-in for NXCLOUD's recording storage: HTTPS on loopback, with a certificate of
its own CA (trustme), serving audio files and every kind of bad answer the archiver
must survive.

Routes are added with :meth:`RecordingHost.add`; any other ``*.mp3`` path answers a
generated MP3-looking file (``make local``'s records link to those), anything else 404.
Files are streamed in pieces, never built whole: a large one costs no memory.
"""

from __future__ import annotations

import hashlib
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

HOST_NAME = "localhost"
MP3_HEADER = b"ID3\x04\x00\x00\x00\x00\x00\x00"


def audio_bytes(size: int, seed: str = "") -> Iterator[bytes]:
    """``size`` bytes of a file that starts like an MP3, in pieces of 64 KiB."""
    block = hashlib.sha256(seed.encode()).digest() * 2048  # 64 KiB
    sent = 0
    first = True
    while sent < size:
        piece = (MP3_HEADER + block)[: min(len(block), size - sent)] if first else block[: size - sent]
        first = False
        sent += len(piece)
        yield piece


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that refused the certificate or hung up: what the tests cause on purpose


@dataclass
class Route:
    status: int = 200
    content_type: str = "audio/mpeg"
    body: bytes | None = None
    size: int = 0  # generated audio of this size when body is None
    delay: float = 0.0  # before the headers
    trickle: float = 0.0  # between pieces of the body
    location: str = ""
    length: int | None = None  # a Content-Length that lies (None: the true one; -1: none, read to the close)
    hits: int = 0


class RecordingHost:
    def __init__(self, port: int = 0) -> None:
        self.ca = trustme.CA()
        self._directory = tempfile.TemporaryDirectory(prefix="nxcdr-recording-host-")
        self.ca_file = str(Path(self._directory.name) / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.routes: dict[str, Route] = {}
        self.generated_size = 48 * 1024
        self._server = _QuietServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(HOST_NAME, "127.0.0.1").configure_cert(context)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str, host: str = HOST_NAME) -> str:
        return f"https://{host}:{self.port}/{path.lstrip('/')}"

    def add(self, path: str, **route: Any) -> str:
        self.routes["/" + path.lstrip("/")] = Route(**route)
        return self.url(path)

    def start(self) -> RecordingHost:
        self._thread = threading.Thread(target=self._server.serve_forever, name="recording-host", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._directory.cleanup()

    def __enter__(self) -> RecordingHost:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                route = host.routes.get(path)
                if route is None and path.endswith(".mp3"):
                    route = Route(size=host.generated_size)
                if route is None:
                    route = Route(status=404, content_type="text/html", body=b"<html>Not Found</html>")
                route.hits += 1
                if route.delay:
                    time.sleep(route.delay)
                self.send_response(route.status)
                if route.location:
                    # As UTF-8 bytes, as servers send a non-ASCII location (send_header takes Latin-1 only).
                    self._headers_buffer.append(f"Location: {route.location}\r\n".encode())  # type: ignore[attr-defined]
                pieces = [route.body] if route.body is not None else audio_bytes(route.size, path)
                length = len(route.body) if route.body is not None else route.size
                self.send_header("Content-Type", route.content_type)
                if route.length == -1:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(route.length if route.length is not None else length))
                self.end_headers()
                try:
                    for piece in pieces:
                        self.wfile.write(piece)
                        if route.trickle:
                            self.wfile.flush()
                            time.sleep(route.trickle)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass  # the archiver hung up (a timeout, a size limit): as a real host sees it
                if route.length is not None and route.length != length:
                    self.close_connection = True

        return Handler
