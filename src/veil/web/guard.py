"""The review app's gate: every request must come from this machine, to this server, with the token.

A local web server is reachable by any web page the user opens: a hostile page can point the
browser at 127.0.0.1 (cross-site requests) or at a name it controls that resolves to 127.0.0.1
(DNS rebinding). The checks below stop both before a route runs:

- Host must be 127.0.0.1 or localhost on our port (a rebinding attacker's name fails here: 421);
- Origin, when sent, must be this server, and Sec-Fetch-Site must not be cross-site (403);
- the per-run token must come as ?token=, the X-Veil-Token header or the HttpOnly cookie (403);
- requests that change anything must carry the token in the X-Veil-Token header, which a
  cross-site form or image cannot set.

Every response says: no caching (pictures of people), no framing, no referrer, and a content
policy that lets the page load nothing from anywhere but this server.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost"})
TOKEN_PARAM = "token"
TOKEN_HEADER = "x-veil-token"
TOKEN_COOKIE = "veil_token"
SAFE_METHODS = frozenset({"GET", "HEAD"})

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
     b"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def _split_host(value: str) -> tuple[str, int | None]:
    """('localhost', 8000) from 'localhost:8000'; a malformed value gives ('', None)."""
    try:
        parts = urlsplit("//" + value)
        return (parts.hostname or ""), parts.port
    except ValueError:
        return "", None


class Guard:
    """ASGI middleware that refuses any request failing the checks in the module docstring."""

    def __init__(self, app: ASGIApp, token: str, port: int) -> None:
        self.app = app
        self.token = token
        self.port = port

    def _allowed_host(self, value: str) -> bool:
        name, port = _split_host(value)
        return name in LOOPBACK_NAMES and port in (None, self.port)

    def _allowed_origin(self, value: str) -> bool:
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            return False
        return (parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_NAMES
                and port == self.port and parts.path in ("", "/"))

    def _has_token(self, scope: Scope, headers: dict[str, str], header_only: bool) -> bool:
        offered = [headers.get(TOKEN_HEADER, "")]
        if not header_only:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            offered += query.get(TOKEN_PARAM, [])
            cookie = SimpleCookie()
            try:
                cookie.load(headers.get("cookie", ""))
            except Exception:  # noqa: BLE001 - a malformed cookie header is just no token
                pass
            if TOKEN_COOKIE in cookie:
                offered.append(cookie[TOKEN_COOKIE].value)
        expected = self.token.encode()
        return any(secrets.compare_digest(o.encode(), expected) for o in offered if o)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets
            await _close_websocket(send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not self._allowed_host(headers.get("host", "")):
            await _plain(send, 421, "This server only answers to 127.0.0.1 and localhost.")
            return
        origin = headers.get("origin")
        if origin is not None and not self._allowed_origin(origin):
            await _plain(send, 403, "Requests from other web sites are refused.")
            return
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            await _plain(send, 403, "Requests from other web sites are refused.")
            return
        unsafe = scope["method"] not in SAFE_METHODS
        if not self._has_token(scope, headers, header_only=unsafe):
            await _plain(send, 403, "Missing or wrong key. Open the address veil printed when it "
                                    "started, including ?token=...")
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, secured)


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


async def _close_websocket(send: Send) -> None:
    await send({"type": "websocket.close", "code": 1008})


__all__ = ["Guard", "TOKEN_COOKIE", "TOKEN_HEADER", "TOKEN_PARAM"]
