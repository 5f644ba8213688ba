"""What a client is told when a `leaderboardChanged` subscription is refused, or ends on an
error, is the same whichever path serves it: the fan-out's fast path
(schema.leaderboards.live, graphql-transport-ws only) or strawberry's resolver
(schema.leaderboards.subscriptions). Each case subscribes once with a document the fast
path takes and once with one it leaves to strawberry (an inline fragment at the field's
level, repeating a field: the same data), each on its own socket, and compares every
message the operation got, including what follows its last one (nothing), on both
protocols.

The shapes are the ones graphql-transport-ws's PROTOCOL.md gives, as its reference server
(graphql-ws ``makeServer``) sends them:
- refused before it runs (a document over a limit or invalid, too many operations on the
  socket): one `error` message with the errors (legacy graphql-ws: one error object),
  nothing after it;
- ended by its execution (a contest the caller may not read, unknown or malformed, a page
  too large, a cancelled contest, as it starts or while it is watched; access lost while
  it is watched): a `next` (legacy: `data`) with `data: null` and the errors, then
  `complete`; each error is the field's, with its `locations` and its `path` (the
  response key: the alias when there is one), as the same error of a Query field over
  HTTP (GraphQL spec 7.1.2);
- refused on its variables (graphql-core's subscribe() returns them as a result, as
  graphql-js does): `next` (legacy: `data`) with the errors, then `complete`; a variable's
  error has `locations` (of its definition) and no `path`, an argument refused as the
  field starts has the field's `path`.
The fast path used to answer every refusal of its own with an `error` message, where
strawberry's path sent `next` and `complete`: a client saw one contest refused two ways.
Errors of the field had neither `locations` nor `path` on either path, and variable errors
came as an `error` message.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette

from infra.clock import OffsetClock
from infra.db import Database
from leaderboards import service
from leaderboards.models import Contest
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, create_contest, dispatch, gid
from tests.support import GQL, PROBE, WSClient, live_server, ws_client

pytestmark = pytest.mark.slow

PROTOCOLS = ("graphql-transport-ws", "graphql-ws")
FIELDS = "version rows { score }"
# The fast path takes this one (one root field; fields, `me` and aliases below it) ...
FAST = """subscription($id: ID!, $first: Int) {
  leaderboardChanged(contestId: $id, first: $first) { %s } }"""
# ... and leaves this one to strawberry (a fragment at the field's level): the same data.
RESOLVER = """subscription($id: ID!, $first: Int) {
  leaderboardChanged(contestId: $id, first: $first) { %s ... on LeaderboardUpdate { version } } }"""
MAX_OPERATIONS = 5  # per connection (the default CHANNELBOARD_WS_MAX_SUBSCRIPTIONS)
UPDATE = """mutation($input: ContestUpdateInput!) { contestUpdate(input: $input) {
  userErrors { field code message } } }"""

NOT_FOUND = {"message": "No such contest.", "extensions": {"code": "NOT_FOUND"}}
CANCELLED = {"message": "The contest was cancelled.", "extensions": {"code": "CONTEST_CANCELLED"}}
PAGE_SIZE = {
    "message": "'first' may be at most 100.",
    "extensions": {"code": "PAGE_SIZE_TOO_LARGE", "maxPageSize": 100},
}


def at_field(error: dict[str, Any], alias: str | None = None) -> dict[str, Any]:
    """``error`` as the field's: where the field is in FAST and RESOLVER (the alias's place
    when it has one), and its response key."""
    message, rest = error["message"], {k: v for k, v in error.items() if k != "message"}
    key = alias or "leaderboardChanged"
    return {"message": message, "locations": [{"line": 2, "column": 3}], "path": [key], **rest}


def aliased(document: str, alias: str | None) -> str:
    return (
        document
        if alias is None
        else document.replace("leaderboardChanged", f"{alias}: leaderboardChanged")
    )


def executed(protocol: str, op_id: str, error: dict[str, Any]) -> list[dict[str, Any]]:
    """An operation its execution ended: no data, the error, then `complete`."""
    push = "next" if protocol == "graphql-transport-ws" else "data"
    payload = {"data": None, "errors": [error]}
    return [
        {"id": op_id, "type": push, "payload": payload},
        {"id": op_id, "type": "complete"},
    ]


def refused(protocol: str, op_id: str, error: dict[str, Any]) -> list[dict[str, Any]]:
    """An operation refused before it ran: one `error` message, nothing after it."""
    payload = [error] if protocol == "graphql-transport-ws" else error
    return [{"id": op_id, "type": "error", "payload": payload}]


async def told(client: WSClient, op_id: str) -> list[dict[str, Any]]:
    """Every message of the operation up to the one that ends it (`complete` or `error`),
    and any that came after it, until a round trip of the protocol (a ping's pong; on the
    legacy protocol, the error answering an invalid operation) shows the server sent
    nothing more before it."""
    messages: list[dict[str, Any]] = []
    while not messages or messages[-1]["type"] not in ("complete", "error"):
        message = await client.receive()
        assert message.get("id") == op_id, message
        messages.append(message)
    if client.protocol == "graphql-transport-ws":
        await client.ws.send(json.dumps({"type": "ping"}))
        done = {"type": "pong"}
        while (message := json.loads(await client.ws.recv())) != done:
            messages.append(message)
        return messages
    probe = await client.subscribe(PROBE, {})
    while (message := await client.receive()).get("id") != probe:
        messages.append(message)
    return messages


@contextlib.asynccontextmanager
async def both_paths(address: str, token: str, protocol: str) -> AsyncIterator[list[WSClient]]:
    """A socket for each path (so that their operation ids are the same)."""
    async with (
        ws_client(address, token, protocol) as fast,
        ws_client(address, token, protocol) as resolver,
    ):
        yield [fast, resolver]


async def subscribe_both(
    clients: list[WSClient], variables: dict[str, Any], fields: str = FIELDS,
    alias: str | None = None,
) -> str:  # fmt: skip
    """The operation's id (the same on both sockets)."""
    fast, resolver = clients
    op_id = await fast.subscribe(aliased(FAST, alias) % fields, variables)
    assert await resolver.subscribe(aliased(RESOLVER, alias) % fields, variables) == op_id
    return op_id


async def told_both(clients: list[WSClient], op_id: str) -> list[list[dict[str, Any]]]:
    return [await told(client, op_id) for client in clients]


@pytest.fixture
async def contest(db: Database, clock: OffsetClock, tenant: Tenant, services: Services) -> Contest:
    made = await create_contest(db, clock, tenant)
    await dispatch(services)
    return made


async def cancel(db: Database, clock: OffsetClock, tenant: Tenant, contest: Contest) -> None:
    async with db.transaction() as session:
        admin = tenant.principal(Role.VENDOR_ADMIN)
        await service.cancel_contest(session, admin, clock, contest_id=contest.id)


# Refused by the resolver (on the fast path: by its own checks) as the operation starts:
# (caller, contest, first) and the error.
STARTS = {
    "another vendor's contest": ("stranger", "contest", None, NOT_FOUND),
    "an unknown contest": ("admin", "unknown", None, NOT_FOUND),
    "a malformed id": ("admin", "not-an-id", None, NOT_FOUND),
    "a draft, to a partner": ("rep", "draft", None, NOT_FOUND),
    "a cancelled contest": ("admin", "cancelled", None, CANCELLED),
    "a page too large": ("admin", "contest", 101, PAGE_SIZE),
}


@pytest.mark.parametrize("alias", [None, "board"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", list(STARTS))
async def test_a_refusal_as_it_starts_is_told_alike_on_both_paths(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant, other_tenant: Tenant, contest: Contest, protocol: str, case: str,
    alias: str | None,
) -> None:  # fmt: skip
    caller, named, first, error = STARTS[case]
    users = {
        "admin": tenant.user(Role.VENDOR_ADMIN),
        "rep": tenant.user(Role.PARTNER_REP),
        "stranger": other_tenant.user(Role.VENDOR_ADMIN),
    }
    ids = {
        "contest": gid(contest),
        "unknown": gid("Contest", uuid.uuid4()),
        "not-an-id": "not-an-id",
        "draft": gid(await create_contest(db, clock, tenant, publish=False)),
    }
    if named == "cancelled":
        gone = await create_contest(db, clock, tenant)
        await cancel(db, clock, tenant, gone)
        ids["cancelled"] = gid(gone)
    variables = {"id": ids[named]} if first is None else {"id": ids[named], "first": first}
    token = gql.token(users[caller])
    async with live_server(app) as address, both_paths(address, token, protocol) as clients:
        op_id = await subscribe_both(clients, variables, alias=alias)
        fast, resolver = await told_both(clients, op_id)
    assert fast == resolver
    assert fast == executed(protocol, op_id, at_field(error, alias))


# Refused on its variables, before either path is chosen: (variables, fields) and the error.
VARIABLES = {
    "a variable of the wrong type": (
        {"first": "ten"},
        FIELDS,
        {
            "message": "Variable '$first' has invalid value: Int cannot represent non-integer "
            "value: 'ten'",
            "locations": [{"line": 1, "column": 24}],
            "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
        },
    ),
    "a required variable missing": (
        {"id": None},
        FIELDS,
        {
            "message": "Variable '$id' has invalid value: Expected a value of non-null type "
            "'ID!' to be provided.",
            "locations": [{"line": 1, "column": 14}],
            "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
        },
    ),
    "null for an argument that may not be null": (
        {"first": None},
        FIELDS,
        {
            "message": "Argument 'first' has invalid value: Expected variable '$first' "
            "provided to non-null type 'Int!' not to be None.",
            "locations": [{"line": 2, "column": 45}],
            "path": ["leaderboardChanged"],
        },
    ),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", list(VARIABLES))
async def test_a_refusal_on_its_variables_is_told_alike_on_both_paths(
    app: Starlette, gql: GQL, tenant: Tenant, contest: Contest, protocol: str, case: str
) -> None:
    """As graphql-ws's reference server tells what subscribe() returned instead of a
    stream: `next` with the errors, then `complete` (it was an `error` message)."""
    given, fields, error = VARIABLES[case]
    variables = {"id": gid(contest), **given}
    if variables["id"] is None:
        del variables["id"]
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, both_paths(address, token, protocol) as clients:
        op_id = await subscribe_both(clients, variables, fields)
        fast, resolver = await told_both(clients, op_id)
    assert fast == resolver
    assert fast == executed(protocol, op_id, error)


# Refused before either path is chosen, on its document: (variables, fields) and the error.
BEFORE = {
    "an unknown field": (
        {},
        "version rows { score nope }",
        {
            "message": "Cannot query field 'nope' on type 'LeaderboardRow'.",
            "locations": [{"line": 2, "column": 76}],
            "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
        },
    ),
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", list(BEFORE))
async def test_a_refusal_before_it_runs_is_told_alike_on_both_paths(
    app: Starlette, gql: GQL, tenant: Tenant, contest: Contest, protocol: str, case: str
) -> None:
    given, fields, error = BEFORE[case]
    variables = {"id": gid(contest), **given}
    if variables["id"] is None:
        del variables["id"]
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    async with live_server(app) as address, both_paths(address, token, protocol) as clients:
        op_id = await subscribe_both(clients, variables, fields)
        fast, resolver = await told_both(clients, op_id)
    assert fast == resolver
    assert fast == refused(protocol, op_id, error)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_one_operation_too_many_is_told_alike_on_both_paths(
    app: Starlette, gql: GQL, tenant: Tenant, contest: Contest, protocol: str
) -> None:
    token = gql.token(tenant.user(Role.VENDOR_ADMIN))
    variables = {"id": gid(contest)}
    async with live_server(app) as address, both_paths(address, token, protocol) as clients:
        for client in clients:
            for _ in range(MAX_OPERATIONS):
                await client.subscribe(FAST % FIELDS, variables)
                await client.data()
        op_id = await subscribe_both(clients, variables)
        fast, resolver = await told_both(clients, op_id)
    assert fast == resolver
    error = {
        "message": "Subscription limit reached: at most 5 operations at once on one connection.",
        "extensions": {"code": "TOO_MANY_OPERATIONS", "maxOperations": MAX_OPERATIONS},
    }
    assert fast == refused(protocol, op_id, error)


@pytest.mark.parametrize("alias", [None, "board"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("change", ["partner no longer eligible", "contest cancelled"])
async def test_an_end_on_an_error_while_watched_is_told_alike_on_both_paths(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock,
    tenant: Tenant, contest: Contest, protocol: str, change: str, alias: str | None,
) -> None:  # fmt: skip
    token = gql.token(tenant.user(Role.PARTNER_REP, 0))
    async with live_server(app) as address, both_paths(address, token, protocol) as clients:
        op_id = await subscribe_both(clients, {"id": gid(contest)}, alias=alias)
        fast_client, resolver_client = clients
        assert await fast_client.data() == await resolver_client.data()
        if change == "contest cancelled":
            await cancel(db, clock, tenant, contest)
            error = CANCELLED
        else:
            others = {"id": gid(contest), "eligibility": {"partnerIds": [gid(tenant.partners[1])]}}
            admin = tenant.user(Role.VENDOR_ADMIN)
            assert (await gql.data(UPDATE, {"input": others}, as_user=admin))["contestUpdate"] == {
                "userErrors": []
            }
            error = NOT_FOUND
        await dispatch(services)
        fast, resolver = await told_both(clients, op_id)
    assert fast == resolver
    assert fast == executed(protocol, op_id, at_field(error, alias))
