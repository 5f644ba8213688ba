"""Automatic persisted queries over the websockets (api.ws_persisted), on both protocols
and, for graphql-transport-ws, on both paths (the fan-out's fast path and strawberry's
resolver), with what the clients send:
- Apollo Client, PersistedQueryLink before the split to GraphQLWsLink: the document and
  its hash in `extensions.persistedQuery`;
- urql, persistedExchange({enableForSubscriptions: true}): the hash alone (`query: ""`),
  and after PersistedQueryNotFound the document with its hash (`miss: true`).
conformance/apollo.mjs and urql.mjs run the clients themselves against a served app."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import pytest
from starlette.applications import Starlette

from infra.clock import OffsetClock
from infra.db import Database
from leaderboards.models import Contest
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.support import GQL, PROBE, WSClient, close_code, eventually, live_server, ws_client

pytestmark = pytest.mark.slow

FIELDS = "version rows { score }"
# The fast path takes this one on graphql-transport-ws; strawberry's resolver the other
# (a fragment at the field's level: the same data). The legacy protocol runs both through
# strawberry.
SHAPES = {
    "fast path": f"leaderboardChanged(contestId: $id) {{ {FIELDS} }}",
    "resolver": f"leaderboardChanged(contestId: $id) {{ {FIELDS} "
    "... on LeaderboardUpdate { version } }",
}


def unique(path: str) -> str:
    """A document of its own for each test: the app (and its process's cache of persisted
    documents) lives for the session, while Redis is emptied after each test."""
    return f"subscription Board{uuid.uuid4().hex}($id: ID!) {{\n  {SHAPES[path]} }}"


CASES = [
    (protocol, path)
    for protocol in ("graphql-transport-ws", "graphql-ws")
    for path in ("fast path", "resolver")
]
NOT_FOUND = {
    "message": "PersistedQueryNotFound",
    "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
}
MISMATCH = {
    "message": "The query's SHA-256 is not `extensions.persistedQuery.sha256Hash`: hash the "
    "exact text sent as `query` (UTF-8).",
    "extensions": {"code": "PERSISTED_QUERY_HASH_MISMATCH"},
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(digest: str, **more: Any) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest, **more}}


async def send(client: WSClient, op_id: str, payload: dict[str, Any]) -> None:
    kind = "subscribe" if client.protocol == "graphql-transport-ws" else "start"
    await client.ws.send(json.dumps({"id": op_id, "type": kind, "payload": payload}))


def refused(protocol: str, op_id: str, error: dict[str, Any]) -> dict[str, Any]:
    """The protocol's refusal of an operation before it runs: one `error` message."""
    payload = [error] if protocol == "graphql-transport-ws" else error
    return {"id": op_id, "type": "error", "payload": payload}


async def then_nothing(client: WSClient) -> None:
    """Nothing more was sent for the operation, and the socket still serves: a round trip
    of the protocol (a ping's pong; on the legacy protocol the error answering PROBE)."""
    if client.protocol == "graphql-transport-ws":
        await client.ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await client.ws.recv()) == {"type": "pong"}
        return
    await send(client, "probe", {"query": PROBE})
    answer = await client.receive()
    assert (answer["id"], answer["type"]) == ("probe", "error"), answer


def operation_tasks() -> list[asyncio.Task[object]]:
    """Tasks running a graphql-transport-ws operation (strawberry's ``run_operation``): the
    fast path's subscribers hold none once joined."""
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "").endswith(".run_operation")
    ]


async def on_its_path(protocol: str, path: str) -> None:
    """The operation runs where the case says (graphql-transport-ws's fast path: no task)."""
    if protocol == "graphql-transport-ws" and path == "fast path":

        async def joined() -> bool:
            return not operation_tasks()

        await eventually(joined)
    elif protocol == "graphql-transport-ws":
        assert operation_tasks()


@pytest.fixture
async def contest(db: Database, clock: OffsetClock, tenant: Tenant, services: Services) -> Contest:
    made = await create_contest(db, clock, tenant)
    await dispatch(services)
    return made


async def pushed_after_a_sale(
    client: WSClient, op_id: str, db: Database, clock: OffsetClock, tenant: Tenant,
    services: Services,
) -> None:  # fmt: skip
    """A real change (a sale approved, its event dispatched) reaches the operation."""
    await approve_sale(db, clock, tenant, partner=0, amount=300)
    await dispatch(services)
    message = await client.receive()
    assert (message["id"], message["type"]) in ((op_id, "next"), (op_id, "data")), message
    rows = message["payload"]["data"]["leaderboardChanged"]["rows"]
    assert sum(r["score"] for r in rows) == 300


@pytest.mark.parametrize(("protocol", "path"), CASES)
async def test_a_subscription_sent_with_its_hash_runs_as_apollo_sends_it(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant, contest: Contest, protocol: str, path: str,
) -> None:  # fmt: skip
    document = unique(path)
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, ws_client(address, token, protocol) as client:
        await send(
            client,
            "1",
            {
                "query": document,
                "variables": {"id": gid(contest)},
                "extensions": persisted(sha(document)),
            },
        )
        first = await client.data()
        assert first["leaderboardChanged"]["rows"] == []
        await on_its_path(protocol, path)
        await pushed_after_a_sale(client, "1", db, clock, tenant, services)
    # Kept, as over HTTP (once it passed the checks), for whoever sends its hash next.
    assert await services.redis.get(services.keys("apq", sha(document))) == document.encode()


@pytest.mark.parametrize(("protocol", "path"), CASES)
async def test_a_wrong_hash_runs_nothing_and_keeps_nothing(
    app: Starlette, gql: GQL, services: Services, tenant: Tenant, contest: Contest,
    protocol: str, path: str,
) -> None:  # fmt: skip
    document = unique(path)
    other = "subscription { notificationReceived { id } }"
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, ws_client(address, token, protocol) as client:
        for op_id, digest in (("1", sha(other)), ("2", "0" * 64)):
            await send(
                client,
                op_id,
                {
                    "query": document,
                    "variables": {"id": gid(contest)},
                    "extensions": persisted(digest),
                },
            )
            assert await client.receive() == refused(protocol, op_id, MISMATCH)
            await then_nothing(client)
        assert not operation_tasks()
        # Neither document is kept under either hash.
        for op_id, digest in (("3", sha(other)), ("4", sha(document))):
            await send(client, op_id, {"query": "", "extensions": persisted(digest)})
            assert await client.receive() == refused(protocol, op_id, NOT_FOUND)
    assert await services.redis.get(services.keys("apq", sha(document))) is None


@pytest.mark.parametrize(("protocol", "path"), CASES)
async def test_the_hash_alone_as_urql_sends_it(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant, contest: Contest, protocol: str, path: str,
) -> None:  # fmt: skip
    document = unique(path)
    variables = {"id": gid(contest)}
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    rep = gql.token(tenant.user(Role.PARTNER_REP))
    async with live_server(app) as address:
        async with ws_client(address, token, protocol) as client:
            # Unknown: PersistedQueryNotFound, the message urql's persistedExchange matches;
            # the socket stays open.
            hash_alone = {
                "query": "",
                "variables": variables,
                "extensions": persisted(sha(document)),
            }
            await send(client, "1", hash_alone)
            assert await client.receive() == refused(protocol, "1", NOT_FOUND)
            await then_nothing(client)
            # urql then sends the document with its hash (marked as a miss), under a new id.
            await send(
                client,
                "2",
                {
                    "query": document,
                    "variables": variables,
                    "extensions": persisted(sha(document), miss=True),
                },
            )
            assert (await client.data())["leaderboardChanged"]["rows"] == []
        # Known now: the hash alone runs it, for another caller too ("" or no query at all),
        # on the path the document takes, and receives the pushes.
        async with ws_client(address, rep, protocol) as client:
            await send(client, "1", {k: v for k, v in hash_alone.items() if k != "query"})
            assert (await client.data())["leaderboardChanged"]["rows"] == []
            await on_its_path(protocol, path)
            await pushed_after_a_sale(client, "1", db, clock, tenant, services)


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
@pytest.mark.parametrize(
    ("extensions", "code"),
    [
        (
            {"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}},
            "PERSISTED_QUERY_NOT_SUPPORTED",
        ),
        ({"persistedQuery": "yes"}, "PERSISTED_QUERY_NOT_SUPPORTED"),
        ({"persistedQuery": {"version": 1, "sha256Hash": "abc"}}, "BAD_REQUEST"),
        ({"persistedQuery": {"version": 1}}, "BAD_REQUEST"),
    ],
)
async def test_malformed_persisted_query_extensions_are_coded(
    app: Starlette, gql: GQL, tenant: Tenant, protocol: str, extensions: dict[str, Any],
    code: str,
) -> None:  # fmt: skip
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, ws_client(address, token, protocol) as client:
        for op_id, query in (("1", ""), ("2", unique("fast path"))):
            await send(client, op_id, {"query": query, "extensions": extensions})
            message = await client.receive()
            assert (message["id"], message["type"]) == (op_id, "error"), message
            error = (
                message["payload"][0] if protocol == "graphql-transport-ws" else message["payload"]
            )
            assert error["extensions"] == {"code": code}
            await then_nothing(client)


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_without_persisted_query_an_operation_still_needs_its_query(
    app: Starlette, gql: GQL, tenant: Tenant, protocol: str
) -> None:
    """Only `extensions.persistedQuery` lets `query` be empty or absent: otherwise an empty
    one is refused (BAD_REQUEST) and a missing one is not a protocol message (4400)."""
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, ws_client(address, token, protocol) as client:
        await send(client, "1", {"query": "", "extensions": {"other": 1}})
        message = await client.receive()
        assert (message["id"], message["type"]) == ("1", "error"), message
        await send(client, "2", {"extensions": {"other": 1}})
        assert await close_code(client.ws) == 4400


async def test_a_duplicate_id_by_hash_closes_as_any_duplicate(
    app: Starlette, gql: GQL, tenant: Tenant, contest: Contest
) -> None:
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    document = unique("fast path")
    payload = {
        "query": document,
        "variables": {"id": gid(contest)},
        "extensions": persisted(sha(document)),
    }
    async with live_server(app) as address, ws_client(address, token) as client:
        await send(client, "1", payload)
        await client.data()
        await send(client, "1", payload)
        assert await close_code(client.ws) == 4409


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_failed_lookup_refuses_the_operation_not_the_socket(
    app: Starlette, gql: GQL, services: Services, tenant: Tenant, contest: Contest,
    protocol: str, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A lookup Redis answers with an error that is no outage (here WRONGTYPE: the key holds
    a list) refuses that operation (INTERNAL_SERVER_ERROR, logged) and the socket serves on;
    it escaped the message loop and closed the socket (1011) with every operation on it."""
    document = unique("fast path")
    key = services.keys("apq", sha(document))
    await services.redis.rpush(key, "not a document")  # type: ignore[misc]
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address:
        async with ws_client(address, token, protocol) as client:
            hash_alone = {"variables": {"id": gid(contest)}, "extensions": persisted(sha(document))}
            await send(client, "1", hash_alone)
            internal = {
                "message": "Internal error.",
                "extensions": {"code": "INTERNAL_SERVER_ERROR"},
            }
            assert await client.receive() == refused(protocol, "1", internal)
            await then_nothing(client)
    assert "persisted query lookup failed" in caplog.text
