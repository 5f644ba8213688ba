"""The data-leak fuzz over websockets: every root Subscription field, as every role, on
both protocols (graphql-transport-ws, where `leaderboardChanged` takes the fan-out's fast
path unless a directive sends it through strawberry, and the legacy graphql-ws), through
real sockets on a real uvicorn, while real changes are made through the public API.

The world is the HTTP fuzz's (tests/api/isolation.py): the demo of Northwind and Contoso
with claims, statements, contests, pilots and rules on both sides, and per caller what it
must never read; a display key of one of Northwind's contests joins it.

- ``test_every_subscription_as_every_role_leaks_nothing``: each caller (anonymous, each
  vendor's staff and API key, the display key, each partner's admin and rep) subscribes to
  every field with no id, with ids of its own vendor, and with ids it may not read
  (another vendor's, another partner's, as global ids and as raw UUIDs): ~490 operations
  on ~100 sockets per protocol; then each partner of each vendor claims a sale the vendor
  approves and both register the same customer (one approved, one rejected); before the
  second round both pilots end. A
  subscription naming what its caller may not read is refused with a coded error
  (``REFUSALS``) and never pushes; every error carries a code that is not a bug's; nothing
  received (data, errors, extensions) names a row, a name or an e-mail the caller must not
  read, nor vendor-internal data for a partner role (the HTTP fuzz's scanner: raw UUIDs,
  global ids of any type, cursors, texts; a value the schema keeps for vendor roles), nor
  a word of pilot arms to anyone but vendor admins, finance and API keys, while the pilots
  run and after they end; the feeds did push (controls); a board's two
  paths serve the same callers alike.
- ``test_pushes_follow_a_change_of_reach``: a channel manager unassigned, a partner taken
  off a contest's eligible partners and out of the group a contest targets, a contest
  turned anonymous, while the subscriptions are open.
- ``test_subscriptions_end_when_the_caller_changes``: a user deactivated, a rep made an
  admin, a partner suspended, an API key and a display key revoked, through the public
  mutations, while the callers hold every field.

One seeded world per test, a round per protocol in it (slow: ~35 s of CPU for the file
on SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import graphql
import pytest
import websockets
from starlette.applications import Starlette

from api.settings import Settings
from deal_registration.registrations import notices
from deal_registration.sales import fanout as claim_fanout
from infra.clock import OffsetClock
from notifications import delivery
from partners.roles import Role
from schema.context import Services
from tests.api.fuzzing import BUG_CODES, decode_id, graphql_id, node_types
from tests.api.isolation import (
    CONTOSO_ROLES,
    MANAGERS,
    NORTHWIND_ROLES,
    OTHER_PARTNER_ROLES,
    PARTNER_ROLES,
    PAYOUT_HOLD,
    PILOT_END,
    World,
    _ok,
    approve_claim,
    claim_sale,
    control_leaks,
    fits_limits,
    seed_world,
    selection,
    settle,
    vendor_only_values,
)
from tests.deal_registration.registrations.scenarios import APPROVE, REJECT, START_REVIEW
from tests.deal_registration.registrations.scenarios import submit as submit_deal
from tests.support import (
    GQL,
    WSClient,
    _graphql_schema,
    close_frame,
    listening,
    live_server,
    ws_client,
)

pytestmark = pytest.mark.slow

PROTOCOLS = ("graphql-transport-ws", "graphql-ws")
ANONYMOUS = "anonymous"
DISPLAY = "display@northwind"  # a display key of one of Northwind's contests
ROLES = (ANONYMOUS, *NORTHWIND_ROLES, DISPLAY, *CONTOSO_ROLES, *OTHER_PARTNER_ROLES)
# How a subscription that names what the caller may not read is refused.
REFUSALS = {"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND"}
# Who may read a pilot's arms (the others, and above all partners, never read a word of
# them, before or after the pilot ends), and who reads no value kept for vendor roles.
ARMS_READERS = frozenset({"admin@northwind.example", "finance@northwind.example",
                          "key@northwind", "admin@contoso.example", "key@contoso"})  # fmt: skip
PARTNER_SIDE = frozenset({ANONYMOUS, *PARTNER_ROLES, *OTHER_PARTNER_ROLES})
# The Node type each ID argument of a Subscription field names.
ARGUMENT_TYPES = {
    "id": "DealRegistration",
    "partnerId": "Partner",
    "repId": "User",
    "contestId": "Contest",
}
# How a connection_init without credentials is answered (on both protocols).
CLOSED_UNAUTHENTICATED = (4403, "Forbidden")
IDS_PER_TYPE = 2  # of each type: the caller's own vendor's, and those it may not read
MAX_OPERATIONS = 5  # per connection (the default CHANNELBOARD_WS_MAX_SUBSCRIPTIONS)


def subscription_fields() -> dict[str, graphql.GraphQLField]:
    schema = _graphql_schema()
    assert schema.subscription_type is not None
    return dict(sorted(schema.subscription_type.fields.items()))


def document(name: str, arguments: list[str], *, directive: bool = False) -> str:
    """The field with every leaf of its type selected (as deep as the limits allow), its
    ``arguments`` as variables; ``directive``: one that keeps every field but takes the
    operation off the leaderboard's fast path."""
    f = subscription_fields()[name]
    declared = ", ".join(f"${a}: {f.args[a].type}" for a in arguments)
    passed = ", ".join(f"{a}: ${a}" for a in arguments)
    head = f"subscription Probe{f'({declared})' if declared else ''}"
    call = f"{name}{f'({passed})' if passed else ''}"
    for depth in range(8, 0, -1):
        fields = selection(f.type, depth)
        if directive:  # (not on the root field: a subscription's may have none)
            fields = fields.replace("{ __typename", "{ __typename @include(if: true)", 1)
        text = f"{head} {{ {call} {fields} }}"
        if fits_limits(text):
            return text
    raise AssertionError(f"{name}: no selection fits the limits")


@dataclass
class Probe:
    """One subscription of one caller, and every message it received."""

    role: str
    field: str
    variables: dict[str, str]
    forbidden: bool
    query: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.role} {self.field}({self.variables})"

    @property
    def pushes(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") in ("next", "data")]

    @property
    def refused(self) -> bool:
        """Refused with a coded error and nothing else: an `error` message, or (a refusal
        raised by the resolver as it starts) a push of no data but the error, then
        `complete`; a connection without credentials is closed."""
        if [m.get("code") for m in self.messages] == [CLOSED_UNAUTHENTICATED]:
            return True
        codes = {_coded(e) for e in self.errors()}
        return bool(codes) and codes <= REFUSALS and not self.carried

    def mark(self) -> None:
        """From now on, ``later`` holds what comes (``messages`` everything)."""
        self._mark = len(self.messages)

    @property
    def later(self) -> Probe:
        """The same probe with only the messages since ``mark``."""
        since = Probe(self.role, self.field, self.variables, self.forbidden, self.query)
        since.messages = self.messages[getattr(self, "_mark", 0) :]
        return since

    @property
    def last(self) -> Probe:
        """The same probe with only its last message (but `complete`)."""
        since = Probe(self.role, self.field, self.variables, self.forbidden, self.query)
        since.messages = [m for m in self.messages if m.get("type") != "complete"][-1:]
        return since

    @property
    def carried(self) -> list[Any]:
        """The data its pushes carried for its field (refusals carry none)."""
        data = [(m["payload"].get("data") or {}).get(self.field) for m in self.pushes]
        return [d for d in data if d is not None]

    @property
    def ended(self) -> bool:
        return any(m.get("type") in ("complete", "error") for m in self.messages)

    def errors(self) -> list[dict[str, Any]]:
        """Every error received, in either protocol's shape."""
        out: list[dict[str, Any]] = []
        for message in self.messages:
            payload = message.get("payload")
            if message.get("type") == "error":
                out += payload if isinstance(payload, list) else [payload]
            elif isinstance(payload, dict):
                out += payload.get("errors") or []
        return out


def _raw(global_id: str) -> str:
    """The UUID a global id names, as a client might send it instead."""
    return decode_id(global_id).partition(":")[2]


def _forbidden(world: World, role: str, name: str, variables: dict[str, str]) -> bool:
    """Whether the probe asks for something the caller may not read: a row among its
    secrets, for a partner user another partner's (or, for a rep, another user's) earnings
    or actions, for the channel manager a partner it is not assigned, for a display key
    anything but its own contests' boards."""
    if role == ANONYMOUS:
        return True
    if role == DISPLAY:
        return variables.get("contestId") not in world.own_ids[DISPLAY]["Contest"]
    named = {a: uuid.UUID(v) if "-" in v else uuid.UUID(_raw(v)) for a, v in variables.items()}
    if any(i in world.secrets[role].ids for i in named.values()):
        return True
    partner_of = {u.id: u.partner_id for u in world.users.values()}
    caller = world.users.get(role)
    if caller is not None and caller.partner_id is not None:
        if named.get("partnerId", caller.partner_id) != caller.partner_id:
            return True
        if "repId" in named:
            rep = named["repId"]
            if partner_of.get(rep) != caller.partner_id:
                return True
            if caller.role is Role.PARTNER_REP and rep != caller.id:
                return True
    if role in MANAGERS:  # assigned its vendor's first partner only
        assigned = world.partners[MANAGERS[role]].id
        if named.get("partnerId", assigned) != assigned:
            return True
        if "repId" in named and partner_of.get(named["repId"]) != assigned:
            return True
    return False


def probes_for(world: World, role: str) -> list[Probe]:
    """Every Subscription field: with no id, and once per id of each ID argument (of its own
    vendor, and ids it may not read, as global ids and raw UUIDs); leaderboards of its own
    vendor also off the fast path."""
    secrets = world.secrets[ROLES[1] if role == ANONYMOUS else role]
    types = {t: node_types()[t] for t in ARGUMENT_TYPES.values()}
    foreign = secrets.global_ids(types, IDS_PER_TYPE)
    own = world.own_ids.get(role, world.own_ids["admin@northwind.example"])
    if role == DISPLAY:  # its own contest, and the vendor's others
        own = world.own_ids["admin@northwind.example"]
    out = []
    for name, f in subscription_fields().items():
        id_args = [a for a in f.args if graphql.get_named_type(f.args[a].type).name == "ID"]
        required = [a for a in id_args if graphql.is_non_null_type(f.args[a].type)]
        cases: list[dict[str, str]] = [] if required else [{}]
        for arg in id_args:
            kind = ARGUMENT_TYPES[arg]
            mine = own.get(kind, [])[:IDS_PER_TYPE]
            theirs = foreign.get(kind, [])
            for value in [*mine, *theirs, *(_raw(i) for i in theirs[:1])]:
                cases.append({arg: value})
        for variables in cases:
            query = document(name, list(variables))
            forbidden = _forbidden(world, role, name, variables)
            out.append(Probe(role, name, variables, forbidden, query))
            if name == "leaderboardChanged" and not forbidden:
                slow = document(name, list(variables), directive=True)
                out.append(Probe(role, name, variables, forbidden, slow))
    return out


class Connection:
    """A socket of one caller and the probes it runs; every message is kept."""

    def __init__(self, client: WSClient, probes: list[Probe]) -> None:
        self.client = client
        self.by_id: dict[str, Probe] = {}
        self.stray: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None  # the close frame, once closed
        self.probes = probes

    async def start(self) -> None:
        for probe in self.probes:
            self.by_id[await self.client.subscribe(probe.query, probe.variables)] = probe

    async def flush(self) -> None:
        """Return once everything the server sent before now has been read: a ping's pong
        (graphql-transport-ws), or the error answering an invalid operation (graphql-ws)."""
        seen = len(self.stray)
        if self.client.protocol == "graphql-transport-ws":
            await self.client.ws.send(json.dumps({"type": "ping"}))
            await until(lambda: any(m["type"] == "pong" for m in self.stray[seen:]), "a pong")
            return
        op_id = "flush"
        await self.client.ws.send(json.dumps(
            {"id": op_id, "type": "start", "payload": {"query": "subscription { nothing }"}}
        ))  # fmt: skip
        await until(lambda: any(m.get("id") == op_id for m in self.stray[seen:]), "an error")

    async def read(self) -> None:
        try:
            async for raw in self.client.ws:
                message = json.loads(raw)
                if message.get("type") in ("ka", "ping"):
                    continue
                probe = self.by_id.get(str(message.get("id")))
                (probe.messages if probe else self.stray).append(message)
                ARRIVED.set()
        except websockets.ConnectionClosed as closed:
            frame = closed.rcvd
            self.closed = (frame.code, frame.reason) if frame else (1006, "")
        else:
            self.closed = (1000, "")
        ARRIVED.set()


@contextlib.asynccontextmanager
async def connected(
    server: str, world: World, protocol: str, probes: list[Probe]
) -> AsyncIterator[list[Connection]]:
    """Every probe subscribed, MAX_OPERATIONS per socket, each socket read in a task; a
    caller's first answers come before the next caller subscribes (the first snapshots
    of hundreds of operations at once would hold as many database connections)."""
    async with contextlib.AsyncExitStack() as stack:
        connections: list[Connection] = []
        readers: list[asyncio.Task[None]] = []
        stack.push_async_callback(_stop, readers)
        by_role: dict[str, list[Probe]] = {}
        for probe in probes:
            by_role.setdefault(probe.role, []).append(probe)
        for role, theirs in by_role.items():
            if role == ANONYMOUS:  # refused as it connects: nothing to subscribe with
                frame = await refused_connection(server, protocol)
                for probe in theirs:
                    probe.messages.append({"type": "close", "code": frame})
                continue
            token = world.tokens[role]
            for start in range(0, len(theirs), MAX_OPERATIONS):
                client = await stack.enter_async_context(ws_client(server, token, protocol))
                connection = Connection(client, theirs[start : start + MAX_OPERATIONS])
                connections.append(connection)
                readers.append(asyncio.create_task(connection.read()))
                await connection.start()
            await until(lambda ps=theirs: all(answered(p) for p in ps), f"{role}'s first answers")
        yield connections


async def _stop(readers: list[asyncio.Task[None]]) -> None:
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


# Set whenever any socket receives a message.
ARRIVED = asyncio.Event()


async def refused_connection(
    server: str, protocol: str, token: str | None = None
) -> tuple[int, str] | None:
    """The close frame answering a connection_init with ``token`` (or none)."""
    async with websockets.connect(f"ws://{server}/graphql", subprotocols=[protocol]) as ws:
        payload = {"Authorization": token} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        return await close_frame(ws)


async def until(check: Callable[[], bool], what: str | Callable[[], str]) -> None:
    """Wait for what the messages must bring (a bound on a hang, not a measure of speed);
    ``what`` says what never came (a callable: described as things stand then)."""
    try:
        async with asyncio.timeout(60):
            while not check():
                ARRIVED.clear()
                await ARRIVED.wait()
    except TimeoutError:
        raise AssertionError(
            f"never happened: {what if isinstance(what, str) else what()}"
        ) from None


def answered(probe: Probe) -> bool:
    """Its first answer came (an error, a first snapshot), or it sends only on changes."""
    return bool(probe.messages) or probe.field in QUIET_UNTIL_A_CHANGE


# Fields that send nothing until something changes (the others send a first snapshot).
QUIET_UNTIL_A_CHANGE = {
    "dealRegistrationStatusChanged",
    "saleClaimStateChanged",
    "notificationReceived",
}


async def _heard(services: Services, world: World, probes: list[Probe]) -> None:
    """Every accepted feed that waits for notices listens (nothing published from now on
    can be missed by it)."""
    hub = services.hub
    channels = set()
    for probe in probes:
        if probe.field not in QUIET_UNTIL_A_CHANGE or probe.messages:
            continue  # a snapshot came (it listened first), or it was refused
        user = world.users.get(probe.role)
        vendor = world.vendors["contoso" if probe.role in CONTOSO_ROLES else "northwind"]
        if probe.field == "notificationReceived":
            if user is not None:  # (an API key receives nothing)
                channels.add(delivery.channel(hub, user.id))
        elif user is None or user.partner_id is None:
            channels.add(notices.vendor_channel(hub, vendor.id))
        elif probe.field == "dealRegistrationStatusChanged":
            channels.add(notices.partner_channel(hub, user.vendor_id, user.partner_id))
        else:
            channels.add(claim_fanout.claim_channel(hub, user.partner_id))
    for channel in sorted(channels):
        await listening(services, channel)


PAYOUTS = """query($p: ID) { payouts(partnerId: $p, first: 20) { edges { node { id status } } } }"""


@dataclass
class Changes:
    """What was changed through the public API, to wait for its pushes."""

    deals: dict[str, str] = field(default_factory=dict)  # partner name -> registration id
    claims: dict[str, str] = field(default_factory=dict)  # partner name -> claim id
    holds: list[str] = field(default_factory=list)  # partner names: a payout held


async def make_changes(gql: GQL, world: World, clock: OffsetClock, round_: int) -> Changes:
    """On both vendors: each partner's rep claims a sale the vendor approves, and
    registers the same customer as the other partner (a conflict): the first is approved,
    the second rejected. Before the second round, both pilots end."""
    changes = Changes()
    users = world.users
    if round_ == 1:  # the second round's pushes come after the pilots ended
        for vendor in ("northwind", "contoso"):
            pilot = world.own_ids[f"admin@{vendor}.example"]["Pilot"][0]
            await _ok(gql, PILOT_END, {"input": {"id": pilot}}, users[f"admin@{vendor}.example"])
    for admin, first, second, serials in (
        ("admin@northwind.example", "Acme Resellers", "Globex Systems",
         (f"DEMO-{20 + round_:06d}", f"DEMO-{520 + round_:06d}")),
        ("admin@contoso.example", "Fabrikam Solutions", "Wingtip Traders",
         (f"CTS-{7 + round_:06d}", f"CTS-{15 + round_:06d}")),
    ):  # fmt: skip
        reps = [users[f"rep@{name.split()[0].lower()}.example"] for name in (first, second)]
        for rep, serial, name in zip(reps, serials, (first, second), strict=True):
            claim = await claim_sale(gql, rep, [serial], "1299.00")
            await approve_claim(gql, users[admin], claim)
            changes.claims[name] = claim
        customer = {"name": f"Kiwi Freight {round_}", "domain": f"kiwi{round_}.example",
                    "country": "NZ"}  # fmt: skip
        for rep, name in zip(reps, (first, second), strict=True):
            changes.deals[name] = await submit_deal(gql, rep, clock, customer=customer)
            review = {"input": {"id": changes.deals[name]}}
            await gql.data(START_REVIEW, review, as_user=users[admin])
        approved = await gql.data(
            APPROVE, {"input": {"id": changes.deals[first], "overrideReason": "first"}},
            as_user=users[admin],
        )  # fmt: skip
        assert not approved["dealRegistrationApprove"]["userErrors"], approved
        rejected = await gql.data(
            REJECT, {"input": {"id": changes.deals[second], "reason": "Registered before"}},
            as_user=users[admin],
        )  # fmt: skip
        assert not rejected["dealRegistrationReject"]["userErrors"], rejected
        # Finance holds the second partner's payouts, with a note for the vendor only.
        finance = users[admin.replace("admin@", "finance@")]
        note = f"{second} sold into a sanctioned region? (round {round_}, internal)"
        for roles, secrets in world.secrets.items():
            if roles in PARTNER_ROLES + OTHER_PARTNER_ROLES:
                secrets.add_text(note, "vendor-internal payout_hold.internal_note")
        partner_id = graphql_id("Partner", world.partners[second].id)
        statements = await gql.data(PAYOUTS, {"p": partner_id}, as_user=finance)
        for edge in statements["payouts"]["edges"]:
            if edge["node"]["status"] in ("PENDING", "HELD"):
                hold = {"statementId": edge["node"]["id"], "note": note}
                held = await gql.data(PAYOUT_HOLD, {"input": hold}, as_user=finance)
                assert not held["payoutHold"]["userErrors"], held
                changes.holds.append(second)
                break
    return changes


def _one(probes: list[Probe], role: str, name: str, **variables: str) -> Probe:
    return next(p for p in probes if (p.role, p.field, p.variables) == (role, name, variables))


def _names(probe: Probe, record_id: str) -> bool:
    return any(record_id in json.dumps(m) for m in probe.pushes)


async def controls(probes: list[Probe], changes: Changes, world: World) -> None:
    """The changes reached the feeds of those who may see them (so that a clean answer to
    everyone else is the rules at work, not a feed that never pushed)."""
    contest = world.own_ids["rep@acme.example"]["Contest"][0]
    expected = [
        (_one(probes, "admin@northwind.example", "dealRegistrationStatusChanged"),
         lambda p: _names(p, changes.deals["Globex Systems"])),
        (_one(probes, "admin@contoso.example", "dealRegistrationStatusChanged"),
         lambda p: _names(p, changes.deals["Wingtip Traders"])),
        (_one(probes, "rep@acme.example", "saleClaimStateChanged"),
         lambda p: _names(p, changes.claims["Acme Resellers"])),
        (_one(probes, "rep@wingtip.example", "saleClaimStateChanged"),
         lambda p: _names(p, changes.claims["Wingtip Traders"])),
        (_one(probes, "admin@globex.example", "notificationReceived"),
         lambda p: len(p.pushes) >= 1),
        (_one(probes, "admin@fabrikam.example", "notificationReceived"),
         lambda p: len(p.pushes) >= 1),
        (_one(probes, "admin@acme.example", "earningsChanged"), lambda p: len(p.pushes) >= 2),
        (_one(probes, "rep@wingtip.example", "earningsChanged"), lambda p: len(p.pushes) >= 2),
        (_one(probes, "rep@acme.example", "leaderboardChanged", contestId=contest),
         lambda p: len(p.pushes) >= 2),
        (_one(probes, "admin@globex.example", "nextActionsChanged"),
         lambda p: len(p.pushes) >= 1),
    ]  # fmt: skip
    for probe, check in expected:
        await until(lambda probe=probe, check=check: check(probe), f"a push to {probe}")


def _coded(error: Any) -> str | None:
    code = (error.get("extensions") or {}).get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) and code else None


def findings(world: World, probes: list[Probe]) -> list[str]:
    """What is wrong with what the probes received."""
    out = []
    for probe in probes:
        role = ROLES[1] if probe.role == ANONYMOUS else probe.role
        sent = probe.query + json.dumps(probe.variables)
        for message in probe.messages:
            payload = message.get("payload")
            if message.get("type") == "error":
                body = {"errors": payload if isinstance(payload, list) else [payload]}
            else:
                body = payload if isinstance(payload, dict) else {}
            leaks = world.secrets[role].found_in(body, sent)
            if probe.role not in ARMS_READERS:
                leaks += control_leaks(body, sent)
            if probe.role in PARTNER_SIDE:
                leaks += vendor_only_values(body)
            if leaks:
                out.append(f"{probe}: leaks {leaks}\n{json.dumps(message)[:2000]}")
        codes = [_coded(e) for e in probe.errors()]
        if None in codes or BUG_CODES & set(codes):
            out.append(f"{probe}: errors without a code, or a bug's: {probe.errors()}")
        if probe.forbidden and not probe.refused:
            out.append(f"{probe}: not refused with {sorted(REFUSALS)}: {probe.messages}")
    return out


DISPLAY_CREATE = """mutation($input: DisplayKeyCreateInput!) { displayKeyCreate(input: $input) {
  displayKey { id } secret } }"""


async def display_key(gql: GQL, world: World) -> str:
    """A display key of Northwind's first contest joins the world as ``DISPLAY`` (what it
    must not read: Contoso's rows and Northwind's internal ones, and both partners' private
    rows); its id."""
    contest = world.own_ids["admin@northwind.example"]["Contest"][0]
    values = {"label": "Sales floor TV", "contestIds": [contest]}
    created = await gql.data(
        DISPLAY_CREATE, {"input": values}, as_user=world.users["admin@northwind.example"]
    )
    world.tokens[DISPLAY] = created["displayKeyCreate"]["secret"]
    secrets = world.secrets["admin@acme.example"].copy()
    globex_view = world.secrets["admin@globex.example"]
    for table, ids in globex_view.by_table.items():
        for row in ids:
            secrets.add_ids([row], globex_view.ids[row], table)
    for value, why in globex_view.texts.items():
        secrets.texts.setdefault(value, why)
    world.secrets[DISPLAY] = secrets
    world.own_ids[DISPLAY] = {"Contest": [contest]}
    return str(created["displayKeyCreate"]["displayKey"]["id"])


async def test_every_subscription_as_every_role_leaks_nothing(
    app: Starlette, gql: GQL, services: Services, settings: Settings, clock: OffsetClock
) -> None:
    world = await seed_world(gql, services, settings, clock)
    await display_key(gql, world)
    problems = []
    for round_, protocol in enumerate(PROTOCOLS):  # one world, a round of changes each
        probes = [p for role in ROLES for p in probes_for(world, role)]
        async with (
            live_server(app) as server,
            connected(server, world, protocol, probes) as sockets,
        ):
            await _heard(services, world, probes)
            changes = await make_changes(gql, world, clock, round_)
            assert changes.holds, "no payout of a second partner to hold"
            await settle(services)
            await controls(probes, changes, world)
            for connection in sockets:  # what the server sent before this round trip came
                await connection.flush()
        problems += [f"{protocol}: {problem}" for problem in findings(world, probes)]
        # Both paths of a board (the fast path and strawberry's, on graphql-transport-ws)
        # serve the same callers alike.
        boards: dict[str, list[bool]] = {}
        for probe in probes:
            if probe.field == "leaderboardChanged":
                boards.setdefault(f"{probe}", []).append(bool(probe.carried))
        problems += [f"{k}: only one path served it" for k, v in boards.items() if len(set(v)) > 1]
        assert {(p.role, p.field) for p in probes} == {
            (r, f) for r in ROLES for f in subscription_fields()
        }
    assert not problems, f"{len(problems)} problems:\n" + "\n\n".join(problems[:30])


# --- a change of who may read what, while the subscriptions are open -----------------

UNASSIGN = """mutation($input: PartnerManagerInput!) { partnerManagerUnassign(input: $input) {
  userErrors { field code message } } }"""
CONTEST_CREATE = """mutation($input: ContestCreateInput!) { contestCreate(input: $input) {
  contest { id } userErrors { field code message } } }"""
CONTEST_UPDATE = """mutation($input: ContestUpdateInput!) { contestUpdate(input: $input) {
  userErrors { field code message } } }"""
GROUP_CREATE = """mutation($input: PartnerGroupCreateInput!) { partnerGroupCreate(input: $input) {
  partnerGroup { id } userErrors { field code message } } }"""
GROUP_ADD = """mutation($input: PartnerGroupMembersInput!) { partnerGroupMembersAdd(input: $input) {
  userErrors { field code message } } }"""
GROUP_REMOVE = """mutation($input: PartnerGroupMembersInput!) {
  partnerGroupMembersRemove(input: $input) { userErrors { field code message } } }"""


async def as_admin(gql: GQL, world: World, document: str, values: dict[str, Any]) -> Any:
    """A mutation by Northwind's admin that must succeed: its payload."""
    admin = world.users["admin@northwind.example"]
    data = await gql.data(document, {"input": values}, as_user=admin)
    [payload] = data.values()
    assert not payload.get("userErrors"), data
    return payload


async def live_contest(gql: GQL, world: World, name: str, **settings: Any) -> str:
    """A live contest of Northwind's, published (its id)."""
    now = gql.clock.now()
    window = {"startsAt": now - timedelta(hours=1), "endsAt": now + timedelta(days=20)}
    values = {"name": name, **{k: v.isoformat() for k, v in window.items()}, **settings}
    values["publish"] = True
    return str((await as_admin(gql, world, CONTEST_CREATE, values))["contest"]["id"])


ASSIGN = """mutation($input: PartnerManagerInput!) { partnerManagerAssign(input: $input) {
  userErrors { field code message } } }"""


async def test_pushes_follow_a_change_of_reach(
    app: Starlette, gql: GQL, services: Services, settings: Settings, clock: OffsetClock
) -> None:
    """What a subscriber may read is decided at every push, as a read decides it, not once
    when it subscribed: a channel manager unassigned from a partner, a partner taken off a
    contest's eligible partners or out of the group a contest targets, a contest turned
    anonymous. Each such feed ends with NOT_FOUND (the anonymised one pushes the anonymised
    board); nothing pushed after the change names what the caller may no longer read. The
    feeds whose reach did not change go on (controls). A round per protocol, in one world
    (the manager is assigned again before the second)."""
    world = await seed_world(gql, services, settings, clock)
    problems = []
    for round_, protocol in enumerate(PROTOCOLS):
        found = await _change_of_reach(app, gql, services, world, clock, protocol, round_)
        problems += [f"{protocol}: {problem}" for problem in found]
    assert not problems, "\n".join(problems)


async def _change_of_reach(
    app: Starlette, gql: GQL, services: Services, world: World, clock: OffsetClock,
    protocol: str, round_: int,
) -> list[str]:  # fmt: skip
    users = world.users
    acme, globex = world.partners["Acme Resellers"], world.partners["Globex Systems"]
    acme_id, globex_id = graphql_id("Partner", acme.id), graphql_id("Partner", globex.id)
    manager, rep, other = "manager@northwind.example", "rep@acme.example", "rep@globex.example"
    assignment = {"partnerId": acme_id, "managerId": graphql_id("User", users[manager].id)}
    if round_:
        await as_admin(gql, world, ASSIGN, assignment)
    named = await live_contest(gql, world, f"Named race {round_}")  # names shown
    narrowed = await live_contest(gql, world, f"Narrowed race {round_}")
    group = await as_admin(gql, world, GROUP_CREATE, {"name": f"Race cohort {round_}"})
    group_id = group["partnerGroup"]["id"]
    await as_admin(gql, world, GROUP_ADD, {"id": group_id, "partnerIds": [acme_id, globex_id]})
    cohort = await live_contest(
        gql, world, f"Cohort race {round_}", eligibility={"groupIds": [group_id]}
    )
    moa = {"name": f"Moa Shipping {round_}", "domain": f"moa{round_}.example", "country": "NZ"}
    deal = await submit_deal(gql, users[rep], clock, customer=moa)
    loses = [
        (manager, "earningsChanged", {"partnerId": acme_id}),
        (manager, "nextActionsChanged", {"partnerId": acme_id}),
        (manager, "dealRegistrationStatusChanged", {"id": deal}),
        (rep, "leaderboardChanged", {"contestId": narrowed}),
        (rep, "leaderboardChanged", {"contestId": cohort}),
    ]
    keeps = [
        (manager, "dealRegistrationStatusChanged", {}),  # hears nothing more of Acme's
        (manager, "leaderboardChanged", {"contestId": narrowed}),  # staff see every contest
        (rep, "leaderboardChanged", {"contestId": named}),  # anonymised from now on
        (other, "leaderboardChanged", {"contestId": narrowed}),
        (other, "leaderboardChanged", {"contestId": cohort}),
    ]
    probes = [Probe(r, f, v, False, document(f, list(v))) for r, f, v in loses + keeps]
    # The partner's boards also off the fast path (graphql-transport-ws: strawberry's).
    probes += [
        Probe(r, f, v, False, document(f, list(v), directive=True))
        for r, f, v in loses + keeps
        if (r, f) == (rep, "leaderboardChanged")
    ]
    lost = [p for p in probes if (p.role, p.field, p.variables) in loses]
    async with live_server(app) as server, connected(server, world, protocol, probes):
        await _heard(services, world, probes)
        await settle(services)  # what was done before is out (a push of it may still come)
        for probe in probes:
            probe.mark()
        await as_admin(gql, world, UNASSIGN, assignment)
        anonymous = {"id": named, "visibility": {"anonymised": True}}
        await as_admin(gql, world, CONTEST_UPDATE, anonymous)
        only_globex = {"id": narrowed, "eligibility": {"partnerIds": [globex_id]}}
        await as_admin(gql, world, CONTEST_UPDATE, only_globex)
        await as_admin(gql, world, GROUP_REMOVE, {"id": group_id, "partnerIds": [acme_id]})
        # Then what pushes to every one of them: a sale of each partner (boards, earnings,
        # next actions) and a step of the watched registration.
        admin = users["admin@northwind.example"]
        for seller, serial in ((rep, 30 + round_), (other, 530 + round_)):
            claim = await claim_sale(gql, users[seller], [f"DEMO-{serial:06d}"], "5000.00")
            await approve_claim(gql, admin, claim)
        await gql.data(START_REVIEW, {"input": {"id": deal}}, as_user=admin)
        await settle(services)
        # Each lost feed ends (or, as a leak, pushes what its caller may no longer read).
        await until(
            lambda: all(p.later.ended or p.later.carried for p in lost),
            lambda: "\n".join(f"{p} ended: {p.later.messages}" for p in lost),
        )
        boards = [p for p in probes if p.field == "leaderboardChanged" and p not in lost]
        await until(lambda: all(p.later.carried for p in boards), "the other boards moved")
    # A push of what was read before a change may still come after it (the board a sale
    # of before moved), but each lost feed ends refused, the anonymised board names Globex
    # in none of its pushes once one did not (and not in its last), and the manager's
    # feed of every registration hears nothing of Acme's after the unassignment.
    problems = [f"{p}: not refused: {p.later.messages}" for p in lost if not p.later.last.refused]
    for probe in probes:
        if (probe.role, probe.variables.get("contestId")) == (rep, named):
            pushes = [json.dumps(c) for c in probe.later.carried]
            named_globex = [globex_id in t or globex.name in t for t in pushes]
            if True in named_globex[named_globex.index(False) if False in named_globex else 0 :]:
                problems.append(f"{probe}: names Globex once anonymised: {pushes}")
        if (probe.role, probe.field) == (manager, "dealRegistrationStatusChanged"):
            told = [(c["registrationId"], c["toStatus"]) for c in probe.later.carried]
            if (deal, "UNDER_REVIEW") in told:
                problems.append(f"{probe}: heard of Acme's registration after: {told}")
    return problems


# --- a change of who the caller is, while its subscriptions are open ------------------

USER_DEACTIVATE = """mutation($input: UserDeactivateInput!) { userDeactivate(input: $input) {
  userErrors { field code message } } }"""
USER_ROLE_CHANGE = """mutation($input: UserRoleChangeInput!) { userRoleChange(input: $input) {
  userErrors { field code message } } }"""
PARTNER_SUSPEND = """mutation($input: PartnerSuspendInput!) { partnerSuspend(input: $input) {
  userErrors { field code message } } }"""
API_KEY_REVOKE = """mutation($input: ApiKeyRevokeInput!) { apiKeyRevoke(input: $input) {
  userErrors { field code message } } }"""
DISPLAY_KEY_REVOKE = """mutation($input: DisplayKeyRevokeInput!) {
  displayKeyRevoke(input: $input) { userErrors { field code message } } }"""


async def test_subscriptions_end_when_the_caller_changes(
    app: Starlette, gql: GQL, services: Services, settings: Settings, clock: OffsetClock
) -> None:
    """Every subscription a caller holds ends when who it is changes, made through the
    public API (docs/security.md, Revocation): a user deactivated, a partner rep made an
    admin, a partner suspended, an API key or a display key revoked. Its sockets close with
    4403 and the cause; the same credential is refused at its next connection (but the
    role change's, which is an admin's now); everyone else's subscriptions go on. A round
    per protocol, in one world (the first round's changes undone before the second)."""
    world = await seed_world(gql, services, settings, clock)
    for round_, protocol in enumerate(PROTOCOLS):
        await _change_of_caller(app, gql, services, world, protocol, round_)


API_KEY_CREATE = """mutation($input: ApiKeyCreateInput!) { apiKeyCreate(input: $input) {
  apiKey { id } secret userErrors { field code message } } }"""
USER_REACTIVATE = """mutation($input: UserReactivateInput!) { userReactivate(input: $input) {
  userErrors { field code message } } }"""
PARTNER_REACTIVATE = """mutation($input: PartnerStatusInput!) {
  partnerReactivate(input: $input) { userErrors { field code message } } }"""


async def _change_of_caller(
    app: Starlette, gql: GQL, services: Services, world: World, protocol: str, round_: int
) -> None:
    users = world.users
    northwind, contoso = users["admin@northwind.example"], users["admin@contoso.example"]
    user, partner = (lambda e: graphql_id("User", users[e].id)), (
        lambda n: graphql_id("Partner", world.partners[n].id))  # fmt: skip
    if round_:  # undo the first round's changes: the same callers again
        for by, mutation, values in (
            (contoso, USER_REACTIVATE, {"id": user("rep@fabrikam.example")}),
            (northwind, USER_ROLE_CHANGE, {"id": user("rep@globex.example"),
                                          "role": "PARTNER_REP"}),
            (contoso, PARTNER_REACTIVATE, {"id": partner("Wingtip Traders")}),
        ):  # fmt: skip
            data = await gql.data(mutation, {"input": values}, as_user=by)
            assert not [p for p in data.values() if p["userErrors"]], data
    display = await display_key(gql, world)
    key = await gql.data(API_KEY_CREATE, {"input": {"name": f"Round {round_}",
                         "role": "VENDOR_ADMIN"}}, as_user=contoso)  # fmt: skip
    world.tokens["key@contoso"] = key["apiKeyCreate"]["secret"]
    contoso_key = key["apiKeyCreate"]["apiKey"]["id"]
    changes = {  # whose: (by whom, mutation, input, the close reason, refused after)
        "rep@fabrikam.example": (contoso, USER_DEACTIVATE,
            {"id": user("rep@fabrikam.example")}, "USER_DEACTIVATED", True),
        "rep@globex.example": (northwind, USER_ROLE_CHANGE,
            {"id": user("rep@globex.example"), "role": "PARTNER_ADMIN"}, "PRINCIPAL_CHANGED",
            False),
        "rep@wingtip.example": (contoso, PARTNER_SUSPEND,
            {"id": partner("Wingtip Traders"), "reason": "Unpaid invoices"},
            "PARTNER_INACTIVE", True),
        "key@contoso": (contoso, API_KEY_REVOKE, {"id": contoso_key}, "INVALID_API_KEY", True),
        DISPLAY: (northwind, DISPLAY_KEY_REVOKE, {"id": display}, "DISPLAY_KEY_REVOKED", True),
    }  # fmt: skip
    bystanders = ["rep@acme.example", "admin@fabrikam.example", "key@northwind"]
    probes = [
        p for role in (*changes, *bystanders) for p in probes_for(world, role) if not p.forbidden
    ]
    async with live_server(app) as server, connected(server, world, protocol, probes) as sockets:
        await _heard(services, world, probes)
        for by, mutation, values, _, _ in changes.values():
            data = await gql.data(mutation, {"input": values}, as_user=by)
            assert not [p for p in data.values() if p["userErrors"]], data
        changed = [c for c in sockets if c.probes[0].role in changes]
        await until(lambda: all(c.closed for c in changed), "every changed caller's socket closed")
        for connection in changed:
            role = connection.probes[0].role
            assert connection.closed == (4403, changes[role][3]), role
        for connection in sockets:
            if connection not in changed:
                assert connection.closed is None
                await connection.flush()
        for role, (*_, refused) in changes.items():
            if refused:
                frame = await refused_connection(server, protocol, world.tokens[role])
                assert frame is not None, role
                assert frame[0] == 4403, (role, frame)
    assert {p.field for p in probes if p.role in changes} == set(subscription_fields())
