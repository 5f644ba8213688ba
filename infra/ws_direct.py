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

``slim`` (used by api.ws_lean once a connection is accepted) trims what uvicorn keeps per
connection: the handshake's request and response, and its ``asyncio.Queue`` of received
messages and ``writable`` event, replaced by ``Inbox`` and ``Flag`` (the same methods,
without the deques: ~3.8 KiB per idle connection). Its keep-alive ping timer stays: it is
what notices a peer that vanished without closing (and frees its subscriber).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable
from typing import Any

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


def slim(scope: Scope) -> None:
    """``release_handshake``, and uvicorn's received-message queue and ``writable`` event
    replaced by the smaller ``Inbox`` and ``Flag`` (an ``asyncio.Queue`` holds four deques
    and an ``Event`` one, ~760 bytes each, for every idle connection). Call it from the
    connection's ASGI task once it has accepted, not while it waits in ``receive``."""
    release_handshake(scope)
    proto = _protocol(scope)
    if proto is None:
        return
    queue = proto.queue
    if type(queue) is asyncio.Queue:
        proto.queue = Inbox(queue._queue)  # type: ignore[assignment,attr-defined]
    writable = proto.writable
    if type(writable) is asyncio.Event:
        proto.writable = Flag(writable.is_set())  # type: ignore[assignment]


class Inbox:
    """The part of ``asyncio.Queue`` uvicorn's protocol uses (``put_nowait``, ``get``,
    ``empty``), for its one consumer: a list, and a future only while the consumer waits."""

    __slots__ = ("_items", "_waiter")

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._items: list[Any] = list(items)
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class Flag:
    """``asyncio.Event`` (``set``, ``clear``, ``is_set``, ``wait``) with no deque of
    waiters while nobody waits."""

    __slots__ = ("_value", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class KeepWebSocketSend:
    """Remembers the server's own ASGI ``send`` for websocket connections (middleware
    further in, e.g. Starlette's exception handling, wraps it in closures)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[SCOPE_KEY] = send
        await self.app(scope, receive, send)
