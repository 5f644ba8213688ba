"""The lean graphql-transport-ws path (api.ws_lean): which connections take it, that a
fast-path leaderboard operation holds no task while idle, and the smaller stand-ins for
uvicorn's per-connection queue and event (infra.ws_direct.Inbox, Flag). The protocol's
rules are proved on this path by the other websocket tests (they connect through uvicorn
with graphql-transport-ws, so they take it)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from starlette.applications import Starlette
from starlette.types import Scope
from websockets.frames import Frame, Opcode

from api.ws_lean import App, chosen_subprotocol
from infra.clock import OffsetClock
from infra.db import Database
from infra.ws_direct import Flag, Inbox
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.support import GQL, close_code, eventually, live_server, ws_client

# Long enough for the first operation to be reading, short of its join (1-5 ms here).
JOINING = 0.002
LIVE = """subscription($id: ID!) { leaderboardChanged(contestId: $id, first: 5) {
  version rows { score } } }"""


def scope(*subprotocols: str) -> Scope:
    return {"type": "websocket", "path": "/graphql", "subprotocols": list(subprotocols)}


def test_the_subprotocol_the_view_picks_chooses_the_path(app: Starlette) -> None:
    assert isinstance(app, App)
    view = app.view
    assert view is not None
    lean = "graphql-transport-ws"
    assert chosen_subprotocol(view, scope(lean)) == lean
    assert chosen_subprotocol(view, scope("chat", lean, "graphql-ws")) == lean
    assert chosen_subprotocol(view, scope("graphql-ws", lean)) == lean  # offered: preferred
    assert chosen_subprotocol(view, scope("chat", "graphql-ws")) == "graphql-ws"  # legacy path
    assert chosen_subprotocol(view, scope("chat")) is None  # strawberry refuses it (4406)


def operation_tasks() -> list[asyncio.Task[object]]:
    """Tasks running a websocket operation (strawberry's ``run_operation``)."""
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "").endswith(".run_operation")
    ]


@pytest.mark.slow
async def test_an_idle_leaderboard_operation_holds_no_task(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, ws_client(address, token) as client:
        first = await client.subscribe(LIVE, {"id": gid(contest)})  # (starts the feed's tasks)
        await client.data()
        others = [await client.subscribe(LIVE, {"id": gid(contest)}) for _ in range(3)]
        for _ in others:
            await client.data()

        async def settled() -> bool:  # each operation's task ends once it has joined
            return not operation_tasks()

        await eventually(settled)
        await approve_sale(db, clock, tenant, partner=0, amount=300)
        await dispatch(services)
        pushed = {}
        for _ in range(4):
            message = await client.receive()
            pushed[message["id"]] = message["payload"]["data"]["leaderboardChanged"]
        assert set(pushed) == {first, *others}
        assert all(sum(r["score"] for r in board["rows"]) == 300 for board in pushed.values())


@pytest.mark.slow
async def test_legacy_and_unknown_subprotocols_keep_the_asgi_path(
    app: Starlette, gql: GQL, tenant: Tenant
) -> None:
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address:
        async with ws_client(address, token, protocol="graphql-ws") as client:
            assert client.ws.subprotocol == "graphql-ws"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with websockets.connect(
                f"ws://{address}/graphql",
                subprotocols=["chat"],  # type: ignore[list-item]
            ) as ws:
                await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4406


async def test_inbox_hands_over_messages_in_order() -> None:
    inbox = Inbox([1])
    assert await inbox.get() == 1
    assert inbox.empty()
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(2)
    inbox.put_nowait(3)
    assert await waiting == 2
    assert await inbox.get() == 3


async def test_flag_wakes_its_waiters_when_set() -> None:
    flag = Flag(True)
    assert await flag.wait()
    flag.clear()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True]
    assert flag.is_set()


@pytest.mark.slow
async def test_an_id_completed_and_reused_at_once_serves_the_new_operation(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant,
) -> None:  # fmt: skip
    """The protocol lets a client reuse an id once it completed it. Sent together, the
    first operation is still joining when it is completed: its ending must not take the
    new one's place (before, it unlisted the new operation, which then dropped every push
    and stayed in the feed after the connection closed)."""
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    subscribe = {"id": "1", "type": "subscribe",
                 "payload": {"query": LIVE, "variables": {"id": gid(contest)}}}  # fmt: skip
    async with live_server(app) as address, ws_client(address, token) as client:
        # The first subscribe alone; while it is joining (reading the contest and its
        # board), its complete and the new subscribe in one write: the server reads both
        # before the first operation's task wakes to its cancellation.
        def frame(message: dict[str, object]) -> bytes:
            data = json.dumps(message).encode()
            return Frame(Opcode.TEXT, data).serialize(mask=True, extensions=[])

        client.ws.transport.write(frame(subscribe))
        await asyncio.sleep(JOINING)
        client.ws.transport.write(frame({"id": "1", "type": "complete"}) + frame(subscribe))
        first = await client.receive()
        assert first["id"] == "1", first
        assert first["type"] == "next", first
        await approve_sale(db, clock, tenant, partner=0, amount=300)
        await dispatch(services)

        async def pushed() -> bool:
            message = await client.receive()
            rows = message["payload"]["data"]["leaderboardChanged"]["rows"]
            return bool(sum(r["score"] for r in rows) == 300)

        await eventually(pushed)
    fanout = services.fanout

    async def left() -> bool:  # the connection closed: nothing of it stays in the feed
        return contest.id not in fanout.feeds

    await eventually(left)


@pytest.mark.slow
@pytest.mark.parametrize("message", ["not json", "1", "[]", '"subscribe"', "null"])
async def test_a_message_that_is_not_a_json_object_closes_with_4400(
    app: Starlette, message: str
) -> None:
    """graphql-transport-ws: a message that is not a valid protocol message closes the
    socket with 4400 (before, JSON that was not an object closed with 1011, an error)."""
    async with (
        live_server(app) as address,
        websockets.connect(
            f"ws://{address}/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        ) as ws,
    ):
        await ws.send(message)
        assert await close_code(ws) == 4400


@pytest.mark.slow
@pytest.mark.parametrize(
    "message",
    [
        {"id": "1", "type": "subscribe", "payload": "not an object"},
        {"id": ["a"], "type": "subscribe", "payload": {"query": "{ __typename }"}},
        {"id": "", "type": "subscribe", "payload": {"query": "{ __typename }"}},
        {"id": "1", "type": "subscribe", "payload": {"query": ["{ __typename }"]}},
        {"id": "1", "type": "subscribe", "payload": {"query": "{ a }", "variables": []}},
        {"id": "1", "type": "subscribe", "payload": {"query": "{ a }", "operationName": 1}},
        {"id": "1", "type": "subscribe", "payload": {"query": "{ a }", "extensions": "x"}},
        {"id": {"a": 1}, "type": "complete"},
        {"type": "ping", "payload": "x"},
        {"type": 5},
    ],
)
async def test_a_message_of_the_wrong_shape_closes_with_4400(
    app: Starlette, gql: GQL, tenant: Tenant, message: dict[str, object]
) -> None:
    """A protocol message whose fields have the wrong types closes the socket with 4400, on
    an acknowledged connection; before, a payload that was not an object or an id that was
    a list raised inside strawberry's handler and closed it with 1011, logging a server
    error for every such message."""
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, ws_client(address, token) as client:
        await client.ws.send(json.dumps(message))
        assert await close_code(client.ws) == 4400
