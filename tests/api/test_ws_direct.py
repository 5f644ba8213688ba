"""Live pushes written straight to uvicorn's transport (infra.ws_direct): the assumptions about
uvicorn's websocket protocol, frames a websocket parser accepts, a slow consumer that stops
reading its socket, and connections lost in the middle of a push."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette
from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from infra.clock import OffsetClock
from infra.db import Database
from infra.ws_direct import DirectSocket, text_frame
from leaderboards.fanout import Subscriber
from leaderboards.models import Contest
from partners.roles import Role
from schema.context import Services
from schema.leaderboards.live import DirectSink
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.support import GQL, WSClient, eventually, live_server, ws_client

LIVE = """subscription($id: ID!) { leaderboardChanged(contestId: $id, first: 5) {
  version rows { score } } }"""
# Large frames (as many aliases as the limit allows), so a socket that is not read fills
# its buffers after a few pushes.
WIDE = (
    "subscription($id: ID!) { leaderboardChanged(contestId: $id, first: 5) { version "
    + " ".join(
        f"r{i}: rows {{ rank score gapToAbove participant {{ id name isYou }} }}" for i in range(20)
    )
    + " } }"
)


def subscribers(services: Services, contest: Contest) -> list[Subscriber]:
    feed = services.fanout.feeds.get(contest.id)
    return [s for g in feed.groups.values() for s in g.subscribers] if feed else []


def direct(sub: Subscriber) -> DirectSocket:
    assert isinstance(sub.sink, DirectSink), "uvicorn's transport was not reachable"
    return sub.sink.socket


def total(data: dict[str, Any], rows: str = "rows") -> int:
    return sum(r["score"] for r in data["leaderboardChanged"][rows])


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_frames_parse_as_unmasked_server_text_frames(size: int) -> None:
    payload = ("é" * size).encode()[:size]
    payload = payload[: len(payload.decode(errors="ignore").encode())]
    reader = StreamReader()
    reader.feed_data(text_frame(payload))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        next(parser)
    frame: Frame = done.value.value
    assert (frame.opcode, frame.fin, bytes(frame.data)) == (Opcode.TEXT, True, payload)


def test_uvicorn_auto_picks_the_protocol_we_write_to() -> None:
    # If an upgrade changes this, DirectSocket's assumptions must be re-read against the new
    # protocol (and the live tests below fail: no subscriber would get a DirectSink).
    assert AutoWebSocketsProtocol is WebSocketsSansIOProtocol


@pytest.mark.slow
async def test_pushes_are_written_in_the_feeds_pass(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, ws_client(address, token) as client:
        await client.subscribe(LIVE, {"id": gid(contest)})
        await client.data()
        (sub,) = subscribers(services, contest)
        sock = direct(sub)
        proto = sock.proto  # the attributes DirectSocket relies on
        assert proto.writable.is_set()
        assert sock.open
        assert proto.transport.get_write_buffer_limits()[1] == 32 * 1024
        # Released once the connection is open (uvicorn reads them only while accepting).
        assert (proto.request, proto.response) == (None, None)
        sink = sub.sink
        assert sink is not None
        results: list[bool] = []
        sub.sink = lambda message: results.append(sink(message)) or results[-1]
        await approve_sale(db, clock, tenant, partner=0, amount=700)
        await dispatch(services)
        assert total(await client.data()) == 700
        assert results == [True]  # written by the refresh itself, not by the task
        assert sub.latest is None


@contextlib.asynccontextmanager
async def unread_client(address: str, token: str) -> AsyncIterator[WSClient]:
    """A client whose socket has a tiny receive buffer and that reads only when asked."""
    host, port = address.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    async with websockets.connect(
        f"ws://{address}/graphql", sock=sock, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        compression=None, max_size=None, max_queue=1,
    ) as ws:  # fmt: skip
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": token}}))
        client = WSClient(ws, "graphql-transport-ws")
        assert (await client.receive())["type"] == "connection_ack"
        yield client


@pytest.mark.slow
async def test_a_socket_that_is_not_read_gets_the_final_state_not_a_backlog(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)
    fanout = services.fanout
    fanout.interval = 0.02
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    try:
        async with (
            live_server(app) as address,
            ws_client(address, token) as reader,
            unread_client(address, token) as sleeper,
        ):
            await reader.subscribe(LIVE, {"id": gid(contest)})
            await reader.data()
            (fast,) = subscribers(services, contest)
            await sleeper.subscribe(WIDE, {"id": gid(contest)})
            await sleeper.data()
            (slow,) = [s for s in subscribers(services, contest) if s is not fast]
            slow_socket = direct(slow)
            # Keep the kernel from absorbing megabytes for the sleeper: its backlog must
            # show up in our transport, where the latest-only rule applies.
            slow_socket.proto.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
            )
            pushes = 30
            worst = 0.0
            for i in range(pushes):
                await approve_sale(db, clock, tenant, partner=i % 2, amount=100)
                started = time.monotonic()
                await dispatch(services)
                while total(await reader.data()) != 100 * (i + 1):
                    pass
                worst = max(worst, time.monotonic() - started)
            assert worst < 2.0  # the other subscriber kept up throughout
            # The sleeper is behind: its transport paused, one (the latest) push waits in
            # its sink (the operation has no task while it keeps up).
            assert not slow_socket.writable
            assert isinstance(slow.sink, DirectSink)
            assert slow.sink.pending is not None
            # It reads at last: what was already buffered, then the final state. Far fewer
            # messages than pushes, in version order, ending on the final totals.
            received = [await sleeper.data()]
            while total(received[-1], "r0") != 100 * pushes:
                received.append(await sleeper.data())
            assert len(received) < pushes // 2
            versions = [m["leaderboardChanged"]["version"] for m in received]
            assert versions == sorted(versions)
            assert total(received[-1], "r19") == 100 * pushes
            assert slow.sink.pending is None
            assert slow_socket.writable
    finally:
        fanout.interval = 0.25


@pytest.mark.slow
async def test_connections_lost_in_the_middle_of_a_push(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(ws_client(address, token)) for _ in range(8)]
        for client in clients:
            await client.subscribe(LIVE, {"id": gid(contest)})
            await client.data()
        subs = subscribers(services, contest)
        assert len(subs) == 8
        victims = subs[4:]
        transports = [direct(victim).proto.transport for victim in victims]
        aborted: list[Subscriber] = []

        def aborting(sink: Callable[[Any], bool]) -> Callable[[Any], bool]:
            def deliver(message: Any) -> bool:
                if not aborted:  # the first delivery of the pass drops four connections
                    aborted.extend(victims)
                    for transport in transports:
                        transport.abort()
                return sink(message)

            return deliver

        for sub in subs:
            assert sub.sink is not None
            sub.sink = aborting(sub.sink)
        await approve_sale(db, clock, tenant, partner=0, amount=100)
        await dispatch(services)
        # Subscribers and clients are not in the same order: the survivors are those that read.
        alive = []
        for client in clients:
            try:
                data = await client.data()
            except websockets.ConnectionClosed:
                continue
            assert total(data) == 100
            alive.append(client)
        assert len(alive) == 4

        async def survivors_only() -> bool:  # the lost connections leave the group
            return len(subscribers(services, contest)) == 4

        await eventually(survivors_only, within=5)
        await approve_sale(db, clock, tenant, partner=1, amount=50)
        await dispatch(services)
        for client in alive:
            assert total(await client.data()) == 150
        for client in clients:
            if client not in alive:
                with contextlib.suppress(Exception):
                    await client.ws.close()


@pytest.mark.slow
async def test_nothing_is_written_for_an_operation_the_client_completed(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, ws_client(address, token) as client:
        first = await client.subscribe(LIVE, {"id": gid(contest)})
        await client.data()
        (sub,) = subscribers(services, contest)
        await client.ws.send(json.dumps({"id": first, "type": "complete"}))

        async def left() -> bool:  # the operation's task unwinds and leaves the feed
            return not subscribers(services, contest)

        await eventually(left)
        # A push in the window where the operation is gone but its task has not unwound
        # yet: the sink drops it rather than write a `next` after `complete`.
        assert sub.sink is not None
        assert sub.sink(object()) is True  # a live operation's sink would refuse a non-Push
        await approve_sale(db, clock, tenant, partner=0, amount=100)
        await dispatch(services)
        second = await client.subscribe(LIVE, {"id": gid(contest)})
        message = await client.receive()
        assert message["id"] == second, message
        assert total(message["payload"]["data"]) == 100
