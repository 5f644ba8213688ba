"""A TCP proxy in front of a real Redis (or another TCP server: PostgreSQL, an API process)
that a test can hold (a command kept on its way to the server, or an answer on its way
back) or drop (the server gone for every client)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class HoldingProxy:
    """Forwards Redis connections; client bytes after ``hold_after`` has passed (with
    ``hold_marker``, those carrying it too, once ``skip`` reads carrying it went through)
    wait until ``release`` is set (``holding`` is set when some do). A connection ends on
    both sides when either side ends (Redis stopped: its clients see the connection lost),
    and at once when Redis cannot be reached. While ``refusing``, a new connection is
    closed at once (Redis seems down to a client that reconnects, while it still serves
    everyone already connected). With ``replies`` the server's bytes are held instead."""

    target: str  # the Redis URL (TCP or a unix socket); or postgresql://, http:// host:port
    hold_after: bytes
    hold_marker: bool = False
    skip: int = 0  # with hold_marker: the reads carrying the marker let through first
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    clients: list[asyncio.StreamWriter] = field(default_factory=list)
    server: asyncio.Server | None = None
    refusing: bool = False
    # Set: which reads carry the marker (instead of containing ``hold_after``), e.g. the
    # first to name the third of some ids; called once per read, in order.
    carries: Callable[[bytes], bool] | None = None
    replies: bool = False  # hold the server's replies (an answer) instead of the client's
    discard: bool = False  # set before release: what was held is dropped with its connection

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, watched: bool
    ) -> None:
        marker_seen = False
        while data := await reader.read(65536):
            if watched:
                carries = self.hold_after in data if self.carries is None else self.carries(data)
                passes = carries and self.hold_marker and self.skip > 0
                if passes:
                    self.skip -= 1
                marker_seen = marker_seen or (self.hold_marker and carries and not passes)
                if marker_seen and not self.release.is_set():
                    self.holding.set()
                    await self.release.wait()
                    if self.discard:
                        return  # the connection ends; what was held is lost
                marker_seen = marker_seen or (carries and not passes)
            writer.write(data)
            await writer.drain()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.refusing:
            client_w.close()
            return
        self.clients.append(client_w)
        url = urlsplit(self.target)
        try:
            if url.scheme == "unix":
                server_r, server_w = await asyncio.open_unix_connection(url.path)
            else:
                server_r, server_w = await asyncio.open_connection(url.hostname, url.port or 6379)
        except OSError:
            client_w.close()
            return
        directions = [
            asyncio.create_task(self._pipe(client_r, server_w, not self.replies)),
            asyncio.create_task(self._pipe(server_r, client_w, self.replies)),
        ]
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        for task in directions:
            task.cancel()
        for w in (client_w, server_w):
            w.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[int]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        try:
            yield self.server.sockets[0].getsockname()[1]
        finally:
            self.release.set()
            self.server.close()

    def cut(self) -> None:
        """Every connection made so far is closed; new ones are still made (unless
        ``refusing``)."""
        for writer in self.clients:
            writer.close()
        self.clients.clear()

    def arm(self, marker: bytes, *, skip: int = 0) -> None:
        """Hold again, at the bytes that carry ``marker`` (after ``skip`` such reads), as a
        new proxy would; for connections made from now on (Redis restarted: all are)."""
        self.hold_after, self.hold_marker, self.skip = marker, True, skip
        self.holding, self.release, self.discard = asyncio.Event(), asyncio.Event(), False

    def drop(self) -> None:
        """Redis goes away: every connection is closed, and new ones are refused."""
        assert self.server is not None
        self.server.close()
        for writer in self.clients:
            writer.close()
