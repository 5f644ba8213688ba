"""Writing ready websocket frames straight to uvicorn's transport.

Sending through ASGI costs, per message and subscriber, a task switch plus Starlette's,
strawberry's and uvicorn's send chain and websockets' frame builder; with thousands of
subscribers per push that was most of a second. Server frames are unmasked, so a text frame
is plain bytes: a live push is encoded once and written to every socket that wants it.

This relies on uvicorn's websockets-sansio protocol (what ``--ws auto`` picks when the
``websockets`` package is installed): its ASGI ``send`` is a bound method of the protocol,
which owns ``transport``, the ``writable`` flow-control event, ``close_sent``,
``disconnected`` and the websockets ``ServerProtocol`` (``conn``). Any other server or
protocol gets ``None`` from ``direct_socket`` and the caller keeps the ASGI path.
tests/api/test_ws_direct.py fails if an upgrade breaks these assumptions.

Every frame is one ``transport.write`` (never half a frame), uvicorn never fragments its own
messages, and the ASGI path also writes whole frames synchronously, so frames from both
paths interleave only at frame boundaries and keep the order they were issued in.
"""

from __future__ import annotations

import struct

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

SCOPE_KEY = "channelboard.ws_send"
# A socket whose user-space buffer is above this is "behind": it gets the latest message
# when it drains instead of a queue of old ones (asyncio's default would be 64 KiB).
HIGH_WATER = 32 * 1024


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented text frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class DirectSocket:
    """One websocket connection, written to without ASGI."""

    __slots__ = ("proto",)

    def __init__(self, proto: WebSocketsSansIOProtocol) -> None:
        self.proto = proto
        proto.transport.set_write_buffer_limits(high=HIGH_WATER)

    @property
    def open(self) -> bool:
        p = self.proto
        return (
            not p.disconnected
            and not p.close_sent
            and p.conn.state is State.OPEN
            and not p.transport.is_closing()
        )

    @property
    def writable(self) -> bool:
        """False while the transport has paused writing (its buffer is above the mark)."""
        return self.proto.writable.is_set()

    def write(self, frame: bytes) -> bool:
        """Write a whole frame now; False (nothing written) if the socket is closed."""
        if not self.open:
            return False
        self.proto.transport.write(frame)
        return True

    def write_if_keeping_up(self, frame: bytes) -> bool:
        """``writable and write(frame)`` in one call: this runs once per subscriber and push."""
        p = self.proto
        if (
            p.writable.is_set() and not p.close_sent and not p.disconnected
            and p.conn.state is State.OPEN and not p.transport.is_closing()
        ):  # fmt: skip
            p.transport.write(frame)
            return True
        return False

    async def drained(self) -> None:
        """Until the transport accepts writes again (or the connection is lost)."""
        await self.proto.writable.wait()


def _protocol(scope: Scope) -> WebSocketsSansIOProtocol | None:
    proto = getattr(scope.get(SCOPE_KEY), "__self__", None)
    if not isinstance(proto, WebSocketsSansIOProtocol) or proto.transport is None:
        return None
    return proto


def direct_socket(scope: Scope) -> DirectSocket | None:
    proto = _protocol(scope)
    if proto is None:
        return None
    release_handshake(scope)
    return DirectSocket(proto)


def release_handshake(scope: Scope) -> None:
    """Once the connection is open, drop the upgrade request and response: uvicorn keeps
    them (their headers: ~3.5 KiB) for the connection's lifetime, though it reads them only
    while accepting, and websockets' parser keeps the request too (a local of its generator,
    suspended for the connection's life), so its headers are emptied as well. (The scope
    has its own copy of the request headers.)"""
    proto = _protocol(scope)
    if proto is None or not proto.handshake_complete:
        return
    request = proto.request
    if request is not None:
        request.headers.clear()
    proto.request = proto.response = None  # type: ignore[assignment]


class KeepWebSocketSend:
    """Remembers the server's own ASGI ``send`` for websocket connections (middleware
    further in, e.g. Starlette's exception handling, wraps it in closures)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[SCOPE_KEY] = send
        await self.app(scope, receive, send)
