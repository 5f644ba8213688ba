"""Open websockets and the principals they authenticated as, so that a socket is closed
(``4403``) as soon as its credential would be refused over HTTP: when its token expires
(after the JWT leeway, as over HTTP), its API key is revoked, its user is deactivated or
changes role or partner, its partner is suspended, or its vendor is suspended - whichever
process made the change.

A commit that writes a table principals are read from (``api.auth.PRINCIPAL_TABLES``) bumps
that table's epoch in this process at once, or through Redis pub/sub when another process
committed it (``infra.cache.TableEpochs``); each bump schedules a re-check of every open
socket (``Authenticator.current``: the user, partner, key and vendor rows behind the open
sockets' principals, read again in bulk). A lost pub/sub connection, after which a notice may be
missing, schedules one as well, and while pub/sub is down the sockets are re-checked every
10 s. Those tables change rarely (an admin's action; ``api.key_usage`` writes
``last_used_at`` unreported for that reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections import Counter
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.http.exceptions import WebSocketDisconnected

from api.auth import PRINCIPAL_TABLES, Authenticator, AuthFailure
from api.ws_limits import refuse_connection
from infra.cache import TableEpochs
from infra.clock import Clock
from partners.roles import Principal

log = logging.getLogger(__name__)

CLOSE_CODE = 4403  # the close reason is the AuthFailure reason, or PRINCIPAL_CHANGED
# Principals re-read per query during a re-check.
RECHECK_BATCH = 500
RETRY_SECONDS = 1.0
# While pub/sub is down another process's change goes unheard: re-check this often then
# (the read caches' TTL).
UNHEARD_RECHECK_SECONDS = 10.0


def _identity(principal: Principal) -> tuple[object, ...]:
    """What a socket's permissions follow from; a change of any of these closes it."""
    p = principal
    return (p.vendor_id, p.role, p.user_id, p.partner_id, p.api_key_id, p.display_key_id)


@dataclass(eq=False, slots=True)
class _Socket:
    websocket: WebSocket
    principal: Principal
    expires: float | None = field(default=None)  # loop time at which its credential expires


class SocketSessions:
    """The process's open, authenticated websockets: admitted up to ``max_per_principal``
    per user or API key (0: no limit), closed when their credential stops working."""

    def __init__(
        self,
        authenticator: Authenticator,
        epochs: TableEpochs,
        clock: Clock,
        *,
        max_per_principal: int = 0,
    ) -> None:
        self.authenticator = authenticator
        self.epochs = epochs
        self.clock = clock
        self.max_per_principal = max_per_principal
        self._open: dict[int, _Socket] = {}  # by id(scope) of the connection
        self._per_caller: Counter[str] = Counter()
        self._dirty = asyncio.Event()
        self.generation = 0  # bumped by every change that calls for a re-check
        self._closing: set[asyncio.Task[None]] = set()
        # Credential expiries: one timer for all sockets (a timer per socket was ~0.5 KiB
        # each), at the earliest of a heap of (loop time, socket key); entries of sockets
        # that closed stay until their time and are skipped then.
        self._expiries: list[tuple[float, int]] = []
        self._expiry_timer: asyncio.TimerHandle | None = None
        epochs.listen(self._tables_changed)

    def _tables_changed(self, tables: frozenset[str] | None) -> None:
        if tables is None or not tables.isdisjoint(PRINCIPAL_TABLES):
            self.generation += 1
            self._dirty.set()

    def open(self, websocket: WebSocket, principal: Principal, *, since: int) -> None:
        """Track a socket authenticated as ``principal``; ``since`` is the ``generation``
        read before authenticating (a change committed while it ran is re-checked, not
        missed). Over the per-principal limit it raises the refusal (close 4429)."""
        self.forget(websocket.scope)  # a second connection_init (legacy protocol)
        limit = self.max_per_principal
        if limit and self._per_caller[principal.caller] >= limit:
            raise refuse_connection(websocket, limit)
        self._per_caller[principal.caller] += 1
        socket = _Socket(websocket, principal)
        key = id(websocket.scope)
        if principal.expires_at is not None:
            deadline = principal.expires_at + self.authenticator.leeway
            delay = (deadline - self.clock.now()).total_seconds()
            socket.expires = asyncio.get_running_loop().time() + max(delay, 0.0)
            self._expire_at(socket.expires, key)
        self._open[key] = socket
        if since != self.generation:
            self._dirty.set()

    def forget(self, scope: Scope) -> None:
        """The connection ended."""
        socket = self._open.pop(id(scope), None)
        if socket is None:
            return
        self._per_caller[socket.principal.caller] -= 1
        if self._per_caller[socket.principal.caller] <= 0:
            del self._per_caller[socket.principal.caller]

    def _expire_at(self, when: float, key: int) -> None:
        if len(self._expiries) > 2 * len(self._open) + 64:  # mostly closed sockets': compact
            self._expiries = [
                (s.expires, k) for k, s in self._open.items() if s.expires is not None
            ]
            heapq.heapify(self._expiries)
        heapq.heappush(self._expiries, (when, key))
        timer = self._expiry_timer
        if timer is None or when < timer.when():
            if timer is not None:
                timer.cancel()
            self._expiry_timer = asyncio.get_running_loop().call_at(when, self._expire)

    def _expire(self) -> None:
        """Close the sockets whose credential has expired by now."""
        self._expiry_timer = None
        now = asyncio.get_running_loop().time() + 0.005  # (the loop may run a timer early)
        heap = self._expiries
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            socket = self._open.get(key)
            # (a socket opened since under the same key has an entry of its own)
            if socket is not None and socket.expires is not None and socket.expires <= now:
                reason = "DISPLAY_KEY_EXPIRED" if socket.principal.is_display else "TOKEN_EXPIRED"
                self._close_soon(socket, reason)
        if heap:
            self._expiry_timer = asyncio.get_running_loop().call_at(heap[0][0], self._expire)

    def __len__(self) -> int:
        return len(self._open)

    async def run(self) -> None:
        """Re-check the open sockets after every relevant change, until cancelled."""
        while True:
            if self.epochs.live:
                await self._dirty.wait()
            else:
                with contextlib.suppress(TimeoutError):  # (wait_for may swallow a cancel)
                    async with asyncio.timeout(UNHEARD_RECHECK_SECONDS):
                        await self._dirty.wait()
            self._dirty.clear()
            if not self._open:
                continue
            if not await self.recheck():
                await asyncio.sleep(RETRY_SECONDS)  # e.g. the database is down: again
                self._dirty.set()

    async def recheck(self) -> bool:
        """Close every socket whose principal no longer authenticates as it did. False when
        the check failed (the sockets stay open until the next attempt)."""
        by_principal: dict[Principal, list[_Socket]] = {}
        for socket in list(self._open.values()):
            by_principal.setdefault(socket.principal, []).append(socket)
        principals = list(by_principal)
        for start in range(0, len(principals), RECHECK_BATCH):
            try:
                outcomes = await self.authenticator.current(
                    principals[start : start + RECHECK_BATCH]
                )
            except Exception:
                log.warning("could not re-check websocket credentials", exc_info=True)
                return False
            for principal, outcome in outcomes.items():
                for socket in by_principal[principal]:
                    if isinstance(outcome, AuthFailure):
                        self._close_soon(socket, outcome.reason)
                    elif _identity(outcome) != _identity(principal):
                        self._close_soon(socket, "PRINCIPAL_CHANGED")
        return True

    def _close_soon(self, socket: _Socket, reason: str) -> None:
        self.forget(socket.websocket.scope)
        task = asyncio.ensure_future(_close(socket.websocket, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _close(websocket: WebSocket, reason: str) -> None:
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):  # the client may be gone already
            await websocket.close(code=CLOSE_CODE, reason=reason)


class AuthUnavailable(Exception):
    """A websocket's credential could not be checked (the database is unreachable)."""


async def serve_closing_on_failure(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve a websocket connection so that a failure after the handshake still ends it with
    a close code - 1013 (try again later) when its credential could not be checked, 1011
    otherwise - instead of dropping the connection (1006), which clients cannot tell from a
    network fault."""
    accepted = closed = False

    async def tracking_send(message: Message) -> None:
        nonlocal accepted, closed
        accepted = accepted or message["type"] == "websocket.accept"
        closed = closed or message["type"] == "websocket.close"
        await send(message)

    try:
        await app(scope, receive, tracking_send)
    except Exception as exc:
        if not accepted or closed:
            raise
        await close_after_failure(send, exc)


def socket_gone(websocket: WebSocket, exc: BaseException) -> bool:
    """``exc``, raised by an operation's send, only says that its socket is closed (by the
    client, or by the server for another message) - no one is left to tell. The rule on
    both protocols: such an operation ends quietly, neither logged nor left unretrieved
    (its connection's handler cleans up as the socket's close reaches it)."""
    if isinstance(exc, WebSocketDisconnected | WebSocketDisconnect):
        return True
    # Starlette refuses a send after the server's close with a RuntimeError; uvicorn a
    # send after the client's with ClientDisconnected (an OSError).
    return isinstance(exc, RuntimeError | OSError) and WebSocketState.DISCONNECTED in (
        websocket.application_state,
        websocket.client_state,
    )


async def close_after_failure(send: Send, exc: Exception) -> None:
    """End an accepted websocket whose serving failed: 1013 (try again later) when its
    credential could not be checked, 1011 otherwise (see ``serve_closing_on_failure``)."""
    if isinstance(exc, AuthUnavailable):
        log.warning("websocket authentication could not reach the database", exc_info=exc)
        code, reason = 1013, "Service unavailable, try again later"
    else:
        log.exception("websocket connection failed", exc_info=exc)
        code, reason = 1011, "Internal server error"
    with contextlib.suppress(Exception):  # the client may be gone already
        await send({"type": "websocket.close", "code": code, "reason": reason})
