"""A message-level fuzz campaign against /graphql's websockets, both protocols, through real
uvicorn sockets: generated sequences of valid and invalid messages (bad JSON, binary frames,
wrong or missing fields, duplicate and reused ids, operations of every kind, documents the
gate refuses, messages over the size limit), checked against a model of the protocol.

What must hold for every sequence:
- the socket is closed with the code the protocol gives the first message that calls for a
  close (4400 malformed, 4401 before the ack, 4409 an id in use, 4429 a second init, 1009
  over the size limit), and otherwise stays open and answers a ping;
- nothing is sent for an id after the server has taken the client's `complete` (`stop`) for
  it (the legacy protocol's `complete` acknowledging a `stop` aside), nor after the
  operation's own `complete` or `error`;
- no error is logged (the app logs bugs at ERROR: ``log.exception``, strawberry's task
  logger, uvicorn's "Exception in ASGI application");
- a bystander connection keeps being served, and once every socket is closed no operation
  task, fan-out feed, pub/sub listener or tracked socket is left.

The CI part is small and derandomized; a bigger campaign runs by hand:
``WS_FUZZ_EXAMPLES=2000 WS_FUZZ_SEED=<n> .venv/bin/pytest -m slow tests/api/test_ws_fuzz.py``
(``WS_FUZZ_SEED`` unset with ``WS_FUZZ_EXAMPLES``: random seeds).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from api.ws_lean import App
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, create_contest, dispatch, gid
from tests.support import GQL, eventually, live_server, ws_client

pytestmark = pytest.mark.slow

TRANSPORT = "graphql-transport-ws"
LEGACY = "graphql-ws"
EXAMPLES = int(os.environ.get("WS_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXAMPLES or 25,
    derandomize=not EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    print_blob=True,
    # WS_FUZZ_SHRINK=0: report the first failure as found (shrinking a sequence through
    # real sockets can take minutes).
    phases=[p for p in Phase if os.environ.get("WS_FUZZ_SHRINK") != "0" or p is not Phase.shrink],
)
MAX_MESSAGE_BYTES = 256 << 10  # the settings' default, which the tests' app keeps
MAX_OPERATIONS = 5
WAIT = 10.0  # a bound on a hang, not a measure of speed

# Operations, by name: (document, variables, what becomes of it). "live" stays open until
# the client completes it; "ends" answers and ends by itself (next + complete, or error).
# {contest} and {partner} are filled in per test.
OPERATIONS: dict[str, tuple[str, dict[str, Any] | None, str]] = {
    "board": (
        "subscription($id: ID!) { leaderboardChanged(contestId: $id, first: 5) "
        "{ version rows { rank score } } }",
        {"id": "{contest}"},
        "live",
    ),
    "board_me": (
        "subscription B($id: ID!) { b: leaderboardChanged(contestId: $id) "
        "{ version me { rank } } }",
        {"id": "{contest}"},
        "live",
    ),
    "board_fragment": (
        "subscription($id: ID!) { leaderboardChanged(contestId: $id) { ...F } } "
        "fragment F on LeaderboardUpdate { version final }",
        {"id": "{contest}"},
        "live",
    ),
    "board_unknown": (
        "subscription($id: ID!) { leaderboardChanged(contestId: $id) { version } }",
        {"id": "Q29udGVzdDowMDAwMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDA="},
        "ends",
    ),
    "board_bad_id": (
        'subscription { leaderboardChanged(contestId: "nope") { version } }',
        None,
        "ends",
    ),
    "board_bad_variables": (
        "subscription($id: ID!) { leaderboardChanged(contestId: $id) { version } }",
        {"id": [1, 2]},
        "ends",
    ),
    "board_page_too_big": (
        "subscription($id: ID!) { leaderboardChanged(contestId: $id, first: 100000) { version } }",
        {"id": "{contest}"},
        "ends",
    ),
    "notifications": ("subscription { notificationReceived { id title } }", None, "live"),
    "deals": (
        "subscription { dealRegistrationStatusChanged { registrationId status } }",
        None,
        "live",
    ),
    "earnings": (
        "subscription($p: ID) { earningsChanged(partnerId: $p) { partnerId currency } }",
        {"p": "{partner}"},
        "live",
    ),
    "next_actions": (
        "subscription($p: ID) { nextActionsChanged(partnerId: $p) { actions { __typename } } }",
        {"p": "{partner}"},
        "live",
    ),
    "query": ("query { __typename }", None, "ends"),
    "mutation": ("mutation { __typename }", None, "ends"),
    "syntax_error": ("subscription {", None, "ends"),
    "unknown_field": ("subscription { noSuchField }", None, "ends"),
    "two_operations": (
        "subscription A { notificationReceived { id } } query B { __typename }",
        None,
        "ends",
    ),
    "named_missing": ("query A { __typename }", None, "ends"),  # operationName "Nope"
    "empty": ("", None, "ends"),
}
NAMES = sorted(OPERATIONS)
IDS = ["1", "2", "3", "{huge}", "é🙂", " "]
# Placeholders for what a failing example should not print in full.
HUGE = {
    "{huge}": "x" * 5000,
    "{too big}": "x" * (MAX_MESSAGE_BYTES + 1),
    "{deep}": "[" * 5000,
    "{big}": '{"type":"ping","pad":"' + "é" * (MAX_MESSAGE_BYTES // 2 - 20) + '"}',
}


class Target:
    """The server under test and what the operations refer to (not a dataclass: failing
    examples print a dataclass's every field)."""

    def __init__(
        self, address: str, token: str, contest: str, partner: str, services: Services,
        db: Database, clock: OffsetClock, tenant: Tenant,
    ) -> None:  # fmt: skip
        self.address, self.token, self.contest, self.partner = address, token, contest, partner
        self.services, self.db, self.clock, self.tenant = services, db, clock, tenant


# --- generated actions -------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """A protocol message (a dict, maybe malformed) sent as JSON text."""

    message: dict[str, Any]


@dataclass(frozen=True)
class Raw:
    """Text or bytes sent as is."""

    data: str | bytes


@dataclass(frozen=True)
class Op:
    """A subscribe (start) of one of OPERATIONS, well formed."""

    op_id: str
    name: str
    wait: bool  # wait for its end before the next action, when it ends by itself


@dataclass(frozen=True)
class Complete:
    op_id: str


@dataclass(frozen=True)
class Barrier:
    """A ping, and the pong awaited: the server has handled everything sent before."""


@dataclass(frozen=True)
class Move:
    """The board changes (a sale approved and dispatched)."""


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    )


json_values = st.recursive(json_scalars, _nested, max_leaves=6)
ids = st.one_of(st.sampled_from(IDS[:3]), st.sampled_from(IDS[3:]))
bad_ids = st.one_of(
    st.just(""),
    st.integers(),
    st.none(),
    st.lists(st.text(max_size=2)),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
types = st.one_of(
    st.sampled_from(
        [
            "connection_init",
            "ping",
            "pong",
            "subscribe",
            "complete",
            "start",
            "stop",
            "connection_terminate",
            "next",
            "data",
            "error",
            "connection_ack",
            "ka",
            "",
            "PING",
        ]
    ),
    json_scalars,
)


@st.composite
def payloads(draw: st.DrawFn) -> Any:
    """A subscribe payload of any shape: right, or one field of the wrong type."""
    query, variables, _ = OPERATIONS[draw(st.sampled_from(NAMES))]
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    spoil = draw(st.sampled_from(["none", "query", "variables", "name", "extensions", "whole"]))
    if spoil == "query":
        body["query"] = draw(st.one_of(st.none(), st.integers(), st.lists(st.text(max_size=3))))
    elif spoil == "variables":
        body["variables"] = draw(
            st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2))
        )
    elif spoil == "name":
        body["operationName"] = draw(
            st.one_of(
                st.integers(),
                st.lists(st.text(max_size=2)),
                st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
            )
        )
    elif spoil == "extensions":
        body["extensions"] = draw(
            st.one_of(json_values, st.dictionaries(st.text(max_size=4), json_values, max_size=3))
        )
    elif spoil == "whole":
        return draw(json_values)
    return body


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        message["type"] = draw(types)
    if draw(st.booleans()):
        message["id"] = draw(st.one_of(ids, bad_ids))
    if draw(st.booleans()):
        message["payload"] = draw(st.one_of(payloads(), json_values))
    if draw(st.integers(0, 5)) == 0:
        message[draw(st.text(max_size=4))] = draw(json_values)
    return message


raws = st.one_of(
    st.sampled_from(
        [
            "",
            "not json",
            "{",
            "[]",
            "1",
            "null",
            '"subscribe"',
            "{}",
            '{"type":"ping"} x',
            '{"type":"ping","type":"subscribe"}',
            "{deep}",
            '{"type":"\\ud800"}',
            '{"type":"ping","payload":{"a":"\\ud83d\\ude42"}}',
        ]
    ),
    st.binary(max_size=16),
    st.sampled_from(["{too big}", "{big}"]),
)
pings = st.builds(
    lambda kind, payload: Send({"type": kind, **({} if payload is None else {"payload": payload})}),
    st.sampled_from(["ping", "pong"]),
    st.one_of(st.none(), st.dictionaries(st.text(max_size=4), json_values, max_size=2)),
)
actions = st.one_of(
    st.builds(Op, ids, st.sampled_from(NAMES), st.booleans()),
    st.builds(Op, ids, st.sampled_from(NAMES), st.booleans()),
    st.builds(Complete, st.one_of(ids, st.just("never-used"))),
    st.just(Barrier()),
    pings,
    st.builds(Send, messages()),
    st.builds(Raw, raws),
    st.just(Move()),
)
# Most sequences start with a proper connection_init, some with a bad one or none.
openings = st.one_of(
    st.just([Send({"type": "connection_init", "payload": {"Authorization": "{token}"}})]),
    st.just([Send({"type": "connection_init", "payload": {"Authorization": "{token}"}})]),
    st.just([Send({"type": "connection_init", "payload": {"Authorization": "{token}"}})]),
    st.just([Send({"type": "connection_init", "payload": {"authToken": "{token}"}})]),
    st.just([Send({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}})]),
    st.just([Send({"type": "connection_init"})]),
    st.just([]),
)
sequences = st.builds(lambda a, b: a + b, openings, st.lists(actions, max_size=14))


# --- the model -----------------------------------------------------------------------------


class Closed(Exception):
    """The model expects the server to close the socket with one of ``codes``."""

    def __init__(self, *codes: int) -> None:
        super().__init__(codes)
        self.codes = codes


@dataclass
class Model:
    """What the server owes a client of ``protocol`` for each message."""

    protocol: str
    init: bool = False
    acked: bool = False
    authenticated: bool = False  # the connection_init carries a working credential
    # id -> "live" | "ends" | "maybe" (ends or stays: refused over the operation limit)
    ops: dict[str, str] = field(default_factory=dict)
    stopped: dict[str, int] = field(default_factory=dict)  # id -> barrier count at stop
    pongs: int = 0  # pongs owed so far
    live: set[str] = field(default_factory=set)  # _key of each operation that stays open
    # Whether the client has received the end (`complete`/`error`) of the operation last
    # subscribed with an id (the driver's answer: the server frees an id before it sends
    # the end), and the id of the subscribe just accepted (for the driver to note).
    ended: Any = lambda op_id: False
    subscribed: str | None = None

    @property
    def legacy(self) -> bool:
        return self.protocol == LEGACY

    def raw(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            raise Closed(4400)
        if len(data.encode()) > MAX_MESSAGE_BYTES:
            raise Closed(1009)
        try:
            value = json.loads(data)
            json.dumps(value, ensure_ascii=False).encode()
        except (ValueError, RecursionError, UnicodeEncodeError):
            raise Closed(4400) from None
        if not isinstance(value, dict):
            raise Closed(4400)
        self.message(value)

    def message(self, message: dict[str, Any]) -> None:  # noqa: C901, PLR0912
        kind = message.get("type")
        if not isinstance(kind, str):
            raise Closed(4400)
        if self.legacy:
            kind = {"start": "subscribe", "stop": "complete"}.get(kind, kind)
            known = {"connection_init", "subscribe", "complete", "connection_terminate"}
        else:
            known = {"connection_init", "ping", "pong", "subscribe", "complete"}
        if kind not in known:
            raise Closed(4400)
        payload = message.get("payload")
        if kind in ("connection_init", "ping", "pong", "connection_terminate"):
            if payload is not None and not isinstance(payload, dict):
                raise Closed(4400)
        else:
            op_id = message.get("id")
            if not isinstance(op_id, str) or not op_id:
                raise Closed(4400)
            if kind == "subscribe":
                if not isinstance(payload, dict):
                    raise Closed(4400)
                for name, types in (
                    ("query", (str,)),
                    ("variables", (dict, type(None))),
                    ("operationName", (str, type(None))),
                    ("extensions", (dict, type(None))),
                ):
                    if not isinstance(payload.get(name), types):
                        raise Closed(4400)
        if kind == "connection_terminate":
            raise Closed(1000)
        if kind == "ping":
            self.pongs += 1
        elif kind == "connection_init":
            if self.init:
                raise Closed(4429)
            self.init = True
            if not self.authenticated:
                raise Closed(4403)
            self.acked = True
        elif kind == "subscribe":
            if not self.acked:
                raise Closed(4401)
            op_id = message["id"]
            previous = self.ops.get(op_id)
            if previous is not None and not self.legacy:
                if previous == "live":
                    raise Closed(4409)
                if previous == "maybe" or not self.ended(op_id):
                    # It may have ended already (its id free again), or not (4409).
                    self.ops[op_id] = "maybe"
                    raise Closed(4409, 0)
                # it ends by itself, and its end was received: its id is free again
            self.stopped.pop(op_id, None)
            self.ops[op_id] = self.fate(message["payload"])
            self.subscribed = op_id
        elif kind == "complete":
            op_id = message["id"]
            self.ops.pop(op_id, None)
            self.stopped[op_id] = -1  # stamped by the next barrier

    def fate(self, payload: dict[str, Any]) -> str:
        key = _key(payload["query"], payload.get("variables"))
        fate = "live" if key in self.live else "ends"
        if payload.get("operationName") not in (None, _name_of(payload["query"])):
            fate = "ends"  # no such operation
        live = [s for s in self.ops.values() if s == "live"]
        if fate == "live" and len(live) >= MAX_OPERATIONS:
            fate = "ends"  # refused: too many operations
        elif fate == "live" and len(self.ops) >= MAX_OPERATIONS:
            fate = "maybe"  # refused unless one that ends by itself has ended by now
        return fate


def _name_of(query: str) -> str | None:
    words = query.replace("(", " ").replace("{", " ").split()
    return (
        words[1]
        if len(words) > 1
        and words[0] in ("query", "subscription", "mutation")
        and words[1][0].isalpha()
        else None
    )


def _key(query: str, variables: Any) -> str:
    return json.dumps([query, variables or {}], sort_keys=True)


# --- the driver ----------------------------------------------------------------------------


class Connection:
    """A raw client socket whose every message is collected in order by a reader task."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for text in self.ws:
                self.received.append(json.loads(text))
                self.arrived.set()
        self.arrived.set()

    async def wait_for(self, test: Any, since: int = 0) -> bool:
        """Until a message received after the first ``since`` passes ``test`` (True), or the
        socket closed (False)."""
        async with asyncio.timeout(WAIT):
            while True:
                if any(test(m) for m in self.received[since:]):
                    return True
                if self.reader.done():
                    return False
                self.arrived.clear()
                await self.arrived.wait()

    async def close_code(self) -> int | None:
        async with asyncio.timeout(WAIT):
            await asyncio.shield(self.reader)
        rcvd = self.ws.protocol.close_rcvd
        return rcvd.code if rcvd is not None else None


def _resolve(value: Any, target: Target) -> Any:
    if isinstance(value, str):
        if value in HUGE:
            return HUGE[value]
        return (
            value.replace("{token}", target.token)
            .replace("{contest}", target.contest)
            .replace("{partner}", target.partner)
        )
    if isinstance(value, dict):
        return {k: _resolve(v, target) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, target) for v in value]
    return value


def _subscribe(protocol: str, op: Op, target: Target) -> dict[str, Any]:
    query, variables, _ = OPERATIONS[op.name]
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = _resolve(variables, target)
    if op.name == "named_missing":
        payload["operationName"] = "Nope"
    kind = "subscribe" if protocol == TRANSPORT else "start"
    return {"id": _resolve(op.op_id, target), "type": kind, "payload": payload}


def _terminal(op_id: str) -> Any:
    return lambda m: m.get("id") == op_id and m.get("type") in ("complete", "error")


async def play(protocol: str, sequence: list[Any], target: Target) -> None:  # noqa: C901, PLR0912
    """Send the sequence, checking each message against the model; then the ids."""
    model = Model(protocol)
    for query, variables, fate in OPERATIONS.values():
        if fate == "live":
            model.live.add(_key(query, _resolve(variables, target)))
    expected: tuple[int, ...] | None = None
    async with websockets.connect(
        f"ws://{target.address}/graphql",
        subprotocols=[protocol],  # type: ignore[list-item]
        compression=None,
        max_size=None,
    ) as ws:
        conn = Connection(ws)
        since: dict[str, int] = {}  # id -> messages received before its last subscribe

        def ended(op_id: str) -> bool:
            terminal = _terminal(op_id)
            return op_id in since and any(terminal(m) for m in conn.received[since[op_id] :])

        model.ended = ended

        async def barrier() -> bool:
            """A ping answered: everything sent before has been handled (False: closed)."""
            model.pongs += 1
            await ws.send(json.dumps({"type": "ping"}))
            if not await conn.wait_for(lambda m: _count_pongs(conn) >= model.pongs):
                return False
            for op_id, at in model.stopped.items():
                if at == -1:
                    model.stopped[op_id] = len(conn.received)
            return True

        try:
            for action in sequence:
                if isinstance(action, Move):
                    await approve_sale(target.db, target.clock, target.tenant, amount=100)
                    await dispatch(target.services)
                    continue
                if isinstance(action, Barrier):
                    if protocol == TRANSPORT and not await barrier():
                        break
                    continue
                data: str | bytes
                if isinstance(action, Raw):
                    data = _resolve(action.data, target)
                else:
                    if isinstance(action, Op):
                        message = _subscribe(protocol, action, target)
                    elif isinstance(action, Complete):
                        kind = "complete" if protocol == TRANSPORT else "stop"
                        message = {"id": _resolve(action.op_id, target), "type": kind}
                    else:
                        message = _resolve(action.message, target)
                        if message.get("type") == "connection_init":
                            model.authenticated = _credential(message) == target.token
                    data = json.dumps(message)
                model.subscribed = None
                try:
                    model.raw(data)
                except Closed as closed:
                    expected = closed.codes
                sent_at = len(conn.received)
                if model.subscribed is not None:
                    since[model.subscribed] = sent_at
                try:
                    await ws.send(data)
                except websockets.ConnectionClosed:
                    break
                if expected is not None:
                    if 0 not in expected:
                        break
                    # an id that may or may not be free again: closed (4409) or not
                    if protocol == TRANSPORT and await barrier():
                        expected = None
                        continue
                    break
                if isinstance(action, Op) and action.wait and model.ops.get(action.op_id) == "ends":
                    if not await conn.wait_for(
                        _terminal(HUGE.get(action.op_id, action.op_id)), sent_at
                    ):
                        break
                    model.ops.pop(action.op_id, None)
            if expected is None:
                # Still open: it answers, and pushes nothing for what the client completed.
                if protocol == TRANSPORT:
                    assert await barrier(), f"closed unexpectedly: {ws.protocol.close_rcvd}"
                await asyncio.sleep(0.1)
                assert not conn.reader.done(), f"closed unexpectedly: {ws.protocol.close_rcvd}"
            else:
                code = await conn.close_code()
                assert code in expected, (
                    f"closed with {ws.protocol.close_rcvd}, expected {expected}"
                )
        finally:
            await ws.close()
            with contextlib.suppress(BaseException):
                async with asyncio.timeout(WAIT):
                    await conn.reader
    check_ids(protocol, conn.received, model, sequence)


def _credential(message: dict[str, Any]) -> Any:
    params = message.get("payload")
    if not isinstance(params, dict):
        return None
    return next(
        (
            params[k]
            for k in ("Authorization", "authorization", "authToken", "token")
            if isinstance(params.get(k), str)
        ),
        None,
    )


def _count_pongs(conn: Connection) -> int:
    return sum(1 for m in conn.received if m.get("type") == "pong")


def check_ids(
    protocol: str, received: list[dict[str, Any]], model: Model, sequence: list[Any]
) -> None:
    """Nothing for an id after its `complete`/`error`, or after the barrier that followed
    the client's `complete` for it (unless the client subscribed again with that id)."""
    subscribed: dict[str, int] = {}
    for action in sequence:
        if isinstance(action, Op):
            op_id = HUGE.get(action.op_id, action.op_id)
            subscribed[op_id] = subscribed.get(op_id, 0) + 1
        elif isinstance(action, Send) and isinstance(action.message.get("id"), str):
            op_id = HUGE.get(action.message["id"], action.message["id"])
            subscribed[op_id] = subscribed.get(op_id, 0) + 2
    ended: set[str] = set()
    for index, message in enumerate(received):
        if not isinstance(message.get("id"), str):
            continue
        op_id = message["id"]
        if subscribed.get(op_id, 0) != 1:
            continue  # reused ids: the messages of two operations interleave
        assert op_id not in ended, f"{message['type']} for {op_id} after it ended: {received}"
        stopped = model.stopped.get(op_id, -1)
        if 0 <= stopped <= index:
            legacy_ack = protocol == LEGACY and message.get("type") == "complete"
            assert legacy_ack, f"{message['type']} for {op_id} after the client completed it"
        if message.get("type") in ("complete", "error"):
            ended.add(op_id)


# --- the tests -----------------------------------------------------------------------------


class Errors(logging.Handler):
    """Every record at ERROR or above, from any logger (uvicorn's do not reach the root)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors() -> Any:
    handler = Errors()
    loggers = [
        logging.getLogger(),
        logging.getLogger("uvicorn"),
        logging.getLogger("uvicorn.error"),
    ]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture
async def target(
    app: Starlette, gql: GQL, services: Services, db: Database, clock: OffsetClock, tenant: Tenant
) -> AsyncIterator[Target]:
    contest = await create_contest(db, clock, tenant)
    await dispatch(services)
    token = gql.token(tenant.user(Role.VENDOR_ADMIN), ttl=timedelta(hours=6))
    async with live_server(app) as address:
        yield Target(
            address, token, gid(contest), gid(tenant.partners[0]), services, db, clock, tenant
        )


OPERATION_TASKS = (
    ".run_operation", ".handle_async_results", ".handle_keep_alive", "DirectSink._drain",
    "DirectSink._end", "DirectSink.stop", "._close_unless_initialised",
    ".handle_connection_init_timeout",
)  # fmt: skip


def leftovers(app: Starlette) -> dict[str, Any]:
    """What the process still holds for websocket operations."""
    assert isinstance(app, App)
    assert app.view is not None
    services: Services = app.state.services
    hub = services.hub
    listeners = {c: len(s) for c, s in getattr(hub, "_listeners", {}).items() if s}
    tasks = [
        t.get_coro().__qualname__  # type: ignore[union-attr]
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "").endswith(OPERATION_TASKS)
    ]
    found = {
        "feeds": len(services.fanout.feeds),
        "sockets": len(app.view.sockets),
        "listeners": listeners,
        "tasks": tasks,
    }
    return {k: v for k, v in found.items() if v}


async def campaign(
    protocol: str, sequence: list[Any], target: Target, app: Starlette, errors: Errors
) -> None:
    errors.records.clear()
    async with ws_client(target.address, target.token, protocol=protocol) as bystander:
        watch = await bystander.subscribe(OPERATIONS["board"][0], {"id": target.contest})
        await bystander.data()
        await play(protocol, sequence, target)
        # the bystander is still served
        await approve_sale(target.db, target.clock, target.tenant, amount=1)
        await dispatch(target.services)
        message = await bystander.receive()
        assert message["id"] == watch, message
        assert message["type"] in ("next", "data"), message
    gc.collect()  # (a task that failed unobserved logs when collected)

    async def released() -> bool:
        return not leftovers(app)

    try:
        await eventually(released, within=5)
    except AssertionError:
        raise AssertionError(f"left after the connections closed: {leftovers(app)}") from None
    assert not errors.records, [
        f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}"
        if r.exc_info
        else f"{r.name}: {r.getMessage()}"
        for r in errors.records
    ]


def seeded(test: Any) -> Any:
    value = os.environ.get("WS_FUZZ_SEED")
    return seed(int(value))(test) if value else test


@seeded
@FUZZ
@given(sequence=sequences)
async def test_graphql_transport_ws_follows_the_protocol(
    app: Starlette, target: Target, errors: Errors, sequence: list[Any]
) -> None:
    await campaign(TRANSPORT, sequence, target, app, errors)


@seeded
@FUZZ
@given(sequence=sequences)
async def test_legacy_graphql_ws_follows_the_protocol(
    app: Starlette, target: Target, errors: Errors, sequence: list[Any]
) -> None:
    await campaign(LEGACY, sequence, target, app, errors)
