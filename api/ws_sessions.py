"""Open websockets and the credentials they authenticated with, so that a socket is closed
(``4403``) as soon as its credential would be refused over HTTP: when its token expires
(after the JWT leeway, as over HTTP), its API key is revoked, its user is deactivated or
changes role or partner, or its partner is suspended - whichever process made the change.

A commit that writes a table principals are read from (``api.auth.PRINCIPAL_TABLES``) bumps
that table's epoch in this process at once, or through Redis pub/sub when another process
committed it (``infra.cache.TableEpochs``); each bump schedules a re-check of every open
socket's credential (one authentication per distinct credential, through the principal
cache, which the same bump has emptied). A lost pub/sub connection, after which a notice
may be missing, schedules one as well, and while pub/sub is down the sockets are re-checked
every 10 s. Those tables change rarely (an admin's action; ``api.key_usage`` writes
``last_used_at`` unreported for that reason), so re-checks cost little.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState

from api.auth import PRINCIPAL_TABLES, Authenticator, AuthFailure
from infra.cache import TableEpochs
from infra.clock import Clock
from partners.roles import Principal

log = logging.getLogger(__name__)

CLOSE_CODE = 4403  # the close reason is the AuthFailure reason, or PRINCIPAL_CHANGED
# Credentials re-authenticated at once during a re-check (each may read the database).
RECHECK_CONCURRENCY = 16
RETRY_SECONDS = 1.0
# While pub/sub is down another process's change goes unheard: re-check this often then
# (the read caches' TTL).
UNHEARD_RECHECK_SECONDS = 10.0


def _identity(principal: Principal) -> tuple[object, ...]:
    """What a socket's permissions follow from; a change of any of these closes it."""
    p = principal
    return (p.vendor_id, p.role, p.user_id, p.partner_id, p.api_key_id)


@dataclass(eq=False)
class _Socket:
    websocket: WebSocket
    credential: str
    principal: Principal
    expiry: asyncio.TimerHandle | None = field(default=None)


class SocketSessions:
    def __init__(self, authenticator: Authenticator, epochs: TableEpochs, clock: Clock) -> None:
        self.authenticator = authenticator
        self.epochs = epochs
        self.clock = clock
        self._open: dict[int, _Socket] = {}  # by id(scope) of the connection
        self._dirty = asyncio.Event()
        self.generation = 0  # bumped by every change that calls for a re-check
        self._closing: set[asyncio.Task[None]] = set()
        epochs.listen(self._tables_changed)

    def _tables_changed(self, tables: frozenset[str] | None) -> None:
        if tables is None or not tables.isdisjoint(PRINCIPAL_TABLES):
            self.generation += 1
            self._dirty.set()

    def open(
        self, websocket: WebSocket, credential: str, principal: Principal, *, since: int
    ) -> None:
        """Track a socket that ``credential`` authenticated as ``principal``; ``since`` is
        the ``generation`` read before authenticating (a change committed while it ran is
        re-checked, not missed)."""
        self.forget(websocket.scope)  # a second connection_init (legacy protocol)
        socket = _Socket(websocket, credential, principal)
        if principal.expires_at is not None:
            deadline = principal.expires_at + self.authenticator.leeway
            delay = (deadline - self.clock.now()).total_seconds()
            socket.expiry = asyncio.get_running_loop().call_later(
                max(delay, 0.0), self._close_soon, socket, "TOKEN_EXPIRED"
            )
        self._open[id(websocket.scope)] = socket
        if since != self.generation:
            self._dirty.set()

    def forget(self, scope: Scope) -> None:
        """The connection ended."""
        socket = self._open.pop(id(scope), None)
        if socket is not None and socket.expiry is not None:
            socket.expiry.cancel()

    def __len__(self) -> int:
        return len(self._open)

    async def run(self) -> None:
        """Re-check the open sockets after every relevant change, until cancelled."""
        while True:
            if self.epochs.live:
                await self._dirty.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), UNHEARD_RECHECK_SECONDS)
            self._dirty.clear()
            if not self._open:
                continue
            try:
                complete = await self.recheck()
            except Exception:
                log.exception("re-checking websocket credentials failed")
                complete = False
            if not complete:
                await asyncio.sleep(RETRY_SECONDS)  # e.g. the database is down: again
                self._dirty.set()

    async def recheck(self) -> bool:
        """Close every socket whose credential no longer authenticates as its principal.
        False when some credential could not be checked (it stays open until next time)."""
        by_credential: dict[str, list[_Socket]] = {}
        for socket in list(self._open.values()):
            by_credential.setdefault(socket.credential, []).append(socket)
        credentials = list(by_credential)
        failed: list[BaseException] = []
        for start in range(0, len(credentials), RECHECK_CONCURRENCY):
            chunk = credentials[start : start + RECHECK_CONCURRENCY]
            outcomes = await asyncio.gather(
                *(self.authenticator.authenticate(c) for c in chunk), return_exceptions=True
            )
            for credential, outcome in zip(chunk, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    failed.append(outcome)
                    continue
                for socket in by_credential[credential]:
                    if isinstance(outcome, AuthFailure):
                        self._close_soon(socket, outcome.reason)
                    elif _identity(outcome) != _identity(socket.principal):
                        self._close_soon(socket, "PRINCIPAL_CHANGED")
        if failed:
            log.warning(
                "could not re-check %d websocket credentials", len(failed), exc_info=failed[0]
            )
        return not failed

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
        if isinstance(exc, AuthUnavailable):
            log.warning("websocket authentication could not reach the database", exc_info=exc)
            code, reason = 1013, "Service unavailable, try again later"
        else:
            log.exception("websocket connection failed")
            code, reason = 1011, "Internal server error"
        with contextlib.suppress(Exception):  # the client may be gone already
            await send({"type": "websocket.close", "code": code, "reason": reason})
