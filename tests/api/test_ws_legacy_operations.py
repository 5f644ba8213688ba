"""The legacy graphql-ws protocol (subscriptions-transport-ws) as its clients expect it,
over a real uvicorn server: keep-alives (`ka` right after connection_ack, then one per
CHANNELBOARD_WS_LEGACY_KEEP_ALIVE_SECONDS; gql's keep_alive_timeout closes a socket that
sends none, Apollo's SubscriptionClient one whose `ka` stop for longer than its `timeout`,
counted from the first), and queries and mutations (one `data`,
then `complete`) under every rule HTTP applies: roles, the same error codes, idempotency,
the audit log. Before, the server sent no `ka` and refused every query and mutation with
OPERATION_NOT_ALLOWED."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import websockets
from starlette.applications import Starlette

from api.app import create_app
from api.settings import Settings, SettingsError
from infra.clock import OffsetClock
from partners.roles import Role
from tests.factories import Tenant, gid
from tests.support import GQL, close_code, error_codes, live_server

pytestmark = pytest.mark.slow

LEGACY = "graphql-ws"
AUDIT = """{ auditLog(filter: {entityType: "api_key"}) { totalCount
  edges { node { actor action entityType } } } }"""
KEY_CREATE = """mutation($name: String!) { apiKeyCreate(input: {name: $name}) {
  apiKey { id name } secret userErrors { code } } }"""
ADJUST = """mutation($input: EarningAdjustmentCreateInput!) {
  earningAdjustmentCreate(input: $input) { entry { id } userErrors { code field } } }"""


async def connect(address: str, token: str, protocol: str = LEGACY) -> websockets.ClientConnection:
    """An acknowledged socket; the messages after connection_ack are left to read."""
    ws = await websockets.connect(f"ws://{address}/graphql", subprotocols=[protocol])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": token}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    return ws


async def messages_within(ws: websockets.ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every message the server sends in the next ``seconds``."""
    got: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
        except TimeoutError:
            break
    return got


async def run(ws: websockets.ClientConnection, op_id: str, query: str, **payload: Any) -> list[Any]:
    """Start an operation; its messages (`ka` skipped) up to `complete` or `error`."""
    body = {"query": query, **payload}
    start = "start" if ws.subprotocol == LEGACY else "subscribe"
    await ws.send(json.dumps({"id": op_id, "type": start, "payload": body}))
    got: list[dict[str, Any]] = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] == "ka":
            continue
        assert message.get("id") == op_id, message
        got.append(message)
        if message["type"] in ("complete", "error"):
            return got


def codes_of(message: dict[str, Any]) -> list[str | None]:
    payload = message["payload"]
    errors = [payload] if message["type"] == "error" else payload.get("errors", [])
    return [(e.get("extensions") or {}).get("code") for e in errors]


def app_with_keep_alive(settings: Settings, clock: OffsetClock, seconds: float) -> Starlette:
    limits = replace(settings.limits, ws_legacy_keep_alive_seconds=seconds)
    return create_app(settings.with_overrides(limits=limits), clock=clock)


@pytest.fixture
async def fast_ka_app(settings: Settings, clock: OffsetClock) -> AsyncIterator[Starlette]:
    app = app_with_keep_alive(settings, clock, 0.1)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def no_ka_app(settings: Settings, clock: OffsetClock) -> AsyncIterator[Starlette]:
    app = app_with_keep_alive(settings, clock, 0)
    async with app.router.lifespan_context(app):
        yield app


def keep_alive_tasks() -> list[asyncio.Task[Any]]:
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "").endswith("handle_keep_alive")
    ]


async def test_the_default_keep_alive_is_15_seconds_and_a_negative_one_is_refused() -> None:
    assert Settings.from_env({}).limits.ws_legacy_keep_alive_seconds == 15
    with pytest.raises(SettingsError, match="CHANNELBOARD_WS_LEGACY_KEEP_ALIVE_SECONDS"):
        Settings.from_env({"CHANNELBOARD_WS_LEGACY_KEEP_ALIVE_SECONDS": "-1"})


async def test_a_legacy_socket_gets_ka_after_connection_ack_then_each_period(
    app: Starlette, fast_ka_app: Starlette, gql: GQL, tenant: Tenant
) -> None:
    token = gql.token(tenant.user(Role.PARTNER_REP))
    async with live_server(app) as address:  # the default period (15 s)
        ws = await connect(address, token)
        # At once: long before a period (bounds on how soon failed on a loaded machine).
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "ka"}
        await ws.close()
    async with live_server(fast_ka_app) as address:  # a period of 0.1 s
        loop = asyncio.get_running_loop()
        asked = loop.time()
        ws = await connect(address, token)
        kas: list[dict[str, Any]] = []
        while len(kas) < 5 or loop.time() - asked < 0.5:
            kas.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        assert all(m == {"type": "ka"} for m in kas)
        # Then one a period, never more often: all were sent since the socket was asked for,
        # one at once and one a period after (a starved event loop sends fewer, never more;
        # a count within a time window failed when the machine stalled the loop meanwhile).
        assert len(kas) <= 1 + (loop.time() - asked) / 0.1 + 0.5
        await ws.close()
        # graphql-transport-ws has ping/pong of its own: no `ka`, nothing unasked.
        ws = await connect(address, token, "graphql-transport-ws")
        assert await messages_within(ws, 0.4) == []
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "pong"}
        await ws.close()


async def test_no_keep_alive_when_the_setting_is_0(
    no_ka_app: Starlette, gql: GQL, tenant: Tenant
) -> None:
    token = gql.token(tenant.user(Role.PARTNER_REP))
    async with live_server(no_ka_app) as address:
        ws = await connect(address, token)
        assert await messages_within(ws, 0.4) == []
        assert keep_alive_tasks() == []
        await ws.close()


async def test_the_keep_alive_ends_with_its_socket_however_it_ends(
    fast_ka_app: Starlette, gql: GQL, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """Closed by the client, closed by the server (a message outside the protocol: 4400),
    dropped without a close frame: no keep-alive task is left, nothing is logged."""
    caplog.set_level(logging.WARNING)
    token = gql.token(tenant.user(Role.PARTNER_REP))
    async with live_server(fast_ka_app) as address:
        sockets = [await connect(address, token) for _ in range(3)]
        assert len(keep_alive_tasks()) == 3
        await sockets[0].close()
        await sockets[1].send(json.dumps({"type": "ping"}))
        assert await close_code(sockets[1]) == 4400
        sockets[2].transport.abort()
        for _ in range(100):
            if not keep_alive_tasks():
                break
            await asyncio.sleep(0.05)
        assert keep_alive_tasks() == []
        await asyncio.sleep(0.3)  # a few periods: a `ka` to a closed socket would show now
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_query_is_one_data_message_then_complete_as_over_http(
    app: Starlette, gql: GQL, tenant: Tenant
) -> None:
    rep = tenant.user(Role.PARTNER_REP)
    query = "query Me($first: Int) { me { role } partners(first: $first) { totalCount } }"
    over_http = await gql(query, {"first": 1}, as_user=rep)
    async with live_server(app) as address:
        ws = await connect(address, gql.token(rep))
        data, complete = await run(ws, "q", query, variables={"first": 1}, operationName="Me")
        assert data == {"type": "data", "id": "q", "payload": over_http}
        assert complete == {"type": "complete", "id": "q"}
        await ws.close()


async def test_a_mutation_changes_and_is_audited_as_over_http(
    app: Starlette, gql: GQL, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    made = await gql.data(KEY_CREATE, {"name": "over http"}, as_user=admin)
    async with live_server(app) as address:
        ws = await connect(address, gql.token(admin))
        data, complete = await run(ws, "m", KEY_CREATE, variables={"name": "over ws"})
        assert complete["type"] == "complete"
        created = data["payload"]["data"]["apiKeyCreate"]
        assert created["userErrors"] == []
        assert created["apiKey"]["name"] == "over ws"
        await ws.close()
    # The key works, as one made over HTTP does.
    me = await gql("{ me { role } }", token=created["secret"])
    assert me["data"] == {"me": {"role": "VENDOR_ADMIN"}}
    assert made["apiKeyCreate"]["secret"] != created["secret"]
    log = (await gql.data(AUDIT, as_user=admin))["auditLog"]
    assert log["totalCount"] == 2
    over_ws, over_http = (e["node"] for e in log["edges"])  # newest first
    assert over_ws == over_http
    assert over_ws["action"] == "api_key.created"


async def test_a_refused_mutation_has_the_http_codes_and_changes_nothing(
    app: Starlette, gql: GQL, tenant: Tenant
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    before = (await gql.data(AUDIT, as_user=admin))["auditLog"]["totalCount"]
    keys = "{ apiKeys { totalCount } }"
    keys_before = (await gql.data(keys, as_user=admin))["apiKeys"]["totalCount"]
    for role in (Role.PARTNER_REP, Role.CHANNEL_MANAGER):
        user = tenant.user(role)
        over_http = await gql(KEY_CREATE, {"name": "nope"}, as_user=user)
        async with live_server(app) as address:
            ws = await connect(address, gql.token(user))
            data, complete = await run(ws, "1", KEY_CREATE, variables={"name": "nope"})
            assert complete["type"] == "complete"
            assert codes_of(data) == error_codes(over_http) == ["FORBIDDEN"]
            assert data["payload"] == over_http
            await ws.close()
    assert (await gql.data(AUDIT, as_user=admin))["auditLog"]["totalCount"] == before
    assert (await gql.data(keys, as_user=admin))["apiKeys"]["totalCount"] == keys_before


async def test_an_idempotent_mutation_retried_over_the_socket_changes_nothing_more(
    app: Starlette, gql: GQL, tenant: Tenant
) -> None:
    finance = tenant.user(Role.FINANCE)
    adjust = {
        "partnerId": gid(tenant.partners[0]),
        "amount": {"amount": "12.50", "currency": "USD"},
        "note": "Goodwill.",
        "idempotencyKey": "legacy-ws-1",
    }
    async with live_server(app) as address:
        ws = await connect(address, gql.token(finance))
        first, _ = await run(ws, "1", ADJUST, variables={"input": adjust})
        again, _ = await run(ws, "2", ADJUST, variables={"input": adjust})
        await ws.close()
    entry = first["payload"]["data"]["earningAdjustmentCreate"]
    assert entry["userErrors"] == []
    assert entry["entry"]["id"]
    assert again["payload"] == first["payload"]
    over_http = await gql.data(ADJUST, {"input": adjust}, as_user=finance)
    assert over_http == first["payload"]["data"]


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ me { role }", None, "GRAPHQL_PARSE_FAILED"),
        ("{ noSuchField }", None, "GRAPHQL_VALIDATION_FAILED"),
        ("query A { me { role } } query B { me { role } }", None, "OPERATION_NAME_REQUIRED"),
        (
            "{ " + " ".join(f"a{n}: me {{ role }}" for n in range(30)) + " }",
            None,
            "TOO_MANY_ALIASES",
        ),
    ],
)
async def test_a_refused_document_is_an_error_with_the_http_code(
    app: Starlette, gql: GQL, tenant: Tenant, query: str, variables: Any, code: str
) -> None:
    admin = tenant.user(Role.VENDOR_ADMIN)
    over_http = await gql.post(query, variables, as_user=admin)
    async with live_server(app) as address:
        ws = await connect(address, gql.token(admin))
        [error] = await run(ws, "1", query, variables=variables)
        assert error["type"] == "error"
        assert codes_of(error) == error_codes(over_http.json()) == [code]
        await ws.close()


@pytest.mark.parametrize("protocol", [LEGACY, "graphql-transport-ws"])
async def test_a_mutation_whose_variables_are_refused_has_the_http_code_and_runs_not(
    app: Starlette, gql: GQL, tenant: Tenant, protocol: str
) -> None:
    """graphql-core refuses variables as execution starts: a `data` message (graphql-transport-ws:
    `next`) with no data (as the protocols' reference servers send it), then `complete`;
    its error had no code (over HTTP: GRAPHQL_VALIDATION_FAILED)."""
    admin = tenant.user(Role.VENDOR_ADMIN)
    over_http = await gql.post(KEY_CREATE, {"name": 5}, as_user=admin)
    async with live_server(app) as address:
        ws = await connect(address, gql.token(admin), protocol)
        data, complete = await run(ws, "1", KEY_CREATE, variables={"name": 5})
        assert data["type"] == ("data" if protocol == LEGACY else "next")
        assert complete == {"type": "complete", "id": "1"}
        assert data["payload"]["data"] is None
        assert codes_of(data) == error_codes(over_http.json()) == ["GRAPHQL_VALIDATION_FAILED"]
        await ws.close()
    assert (await gql.data(AUDIT, as_user=admin))["auditLog"]["totalCount"] == 0
