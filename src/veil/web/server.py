"""Runs the review app with uvicorn on a loopback socket we bind ourselves, with a fresh token."""

from __future__ import annotations

import secrets
import socket
import threading
import time

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import create_app
from .guard import SECURITY_HEADERS
from .library import Library

HOST = "127.0.0.1"  # loopback only: nothing else on the network can connect


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol, whose own 400 answers (malformed requests) carry our security headers.

    uvicorn writes that 400 itself, before any ASGI app (and so the Guard) runs, with only
    Content-Type and Connection, and has no setting for it: this override is the one place to add
    them. It mirrors H11Protocol.send_400_response of uvicorn 0.55; test_web_security
    sends a malformed request to a real server to notice if a later uvicorn changes it.
    """

    def send_400_response(self, msg: str) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"),
                   *SECURITY_HEADERS]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                      h11.Data(data=msg.encode("ascii", "replace")), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))  # type: ignore[arg-type]
        self.transport.close()


class ReviewServer:
    """One run of the app. The socket is bound in the constructor, so `url` is final at once.

    Binding port 0 lets the system pick a free port, with no window in which another program
    could take it between choosing and binding.
    """

    def __init__(self, library: Library, port: int = 0) -> None:
        self.library = library
        self.token = secrets.token_urlsafe(32)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._socket.bind((HOST, port))
        except OSError:
            self._socket.close()
            raise
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            create_app(library, self.token, self.port), log_level="warning", access_log=False,
            http=_Protocol, lifespan="off", ws="none", server_header=False, date_header=False, proxy_headers=False,
            timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/?token={self.token}"

    def run(self) -> None:
        """Serve until interrupted (Ctrl+C)."""
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._socket.close()

    def start(self, timeout: float = 30.0) -> ReviewServer:
        """Serve from a background thread (for tests and embedding); returns once it accepts."""
        self._thread = threading.Thread(target=self.run, name="veil-review", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the review server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["ReviewServer", "HOST"]
