"""A data-leak fuzz: generated documents, fed the real ids of records the caller may not
see, never get an answer (data, error messages or extensions) that names them.

1. Vendor isolation. As every role of Northwind (its admin, channel manager and finance,
   Acme's admin and rep, an API key) nothing of Contoso's: no id of any of its rows (as
   the raw UUID, a global id of any type or a cursor) and none of its own names (partners,
   users' names and emails, contests, programs, groups, pilots, rules); and the same the
   other way round for Contoso's roles (its admin, Fabrikam's admin and rep, an API key).
2. Partner isolation. As Acme's admin and rep, nothing private of Globex's: its claims,
   deals, earnings and ledger entries, payouts, statements, holds, decisions, signal rows,
   rule firings and recommendations, forecasts, invitations, attachments (proof), users
   (ids, names, emails). What is public within a program is listed in ``PUBLIC_ACROSS_PARTNERS``.
3. Vendor-internal data never reaches a partner role: the vendor-only signals (names and
   labels), pilots, their arms and the treatment group (ids, names, the arm values),
   partner groups, incentive rules (ids, names, versions, a staff notice's words), partners'
   internal notes, payout holds' and reviews' internal notes, risk flags, audit entries,
   outbox events, API keys, concentration thresholds.

The demo is seeded, then both vendors get what makes those fields non-empty: a second
vendor admin (four eyes), a partner group over their partners with a pilot whose control
arm holds Acme (Northwind) and which has started, an earning program and approved sales
(so ledger, signals and contest credits), an incentive rule reading a vendor-only signal
that fires (a recommendation, a payout review, a staff notice), an API key. Contoso gets
the counterparts of Northwind's demo through the public API (``isolation._contoso_sales``):
a second partner (Wingtip) with users, a serial import, claims with proof of both partners
approved (and one rejected), a paid statement and a held one, ledger entries, a contest
with scores, deal registrations in conflict and a forecast.

Two campaigns (slow: ~45 s of CPU in all on SQLite, ~10 s more than before Contoso had
claims and statements):

- ``test_every_root_query_with_foreign_ids_leaks_nothing`` (deterministic): every root
  query field as every role, with every leaf of its type selected (depth-bounded), once
  per id of each of its ID arguments (those the caller may not read, and its own vendor's)
  and ``node(id:)`` for the ids it may not read of every Node type: ~3,100 requests; and,
  as a control, each vendor's admin reads every kind of record its first partner's users
  must not (Globex's, Wingtip's, the vendor's internal ones);
- ``test_generated_documents_leak_nothing`` (hypothesis-graphql): one root field per
  document (queries, and mutations), ID arguments drawn mostly from the other tenant's and
  the other partner's ids, derandomized, as literals and again as variables: 150 examples
  of each kind in CI.

A larger campaign::

    CHANNELBOARD_FUZZ_EXAMPLES=3000 CHANNELBOARD_FUZZ_SEED=11 \\
      .venv/bin/python -m pytest tests/api/test_isolation_fuzz.py -m slow -x -q -s
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from typing import Any

import graphql
import pytest
from graphql import DocumentNode
from hypothesis import given, seed
from hypothesis import strategies as st
from hypothesis_graphql import nodes

from api.settings import Settings
from infra.clock import OffsetClock
from schema.context import Services
from tests.api.fuzzing import (
    MALFORMED_IDS,
    SEED,
    Pool,
    as_variables,
    check_response,
    custom_scalars,
    hypothesis_settings,
    node_types,
    root_fields,
    strategy,
)
from tests.api.isolation import (
    CONTOSO_ROLES,
    NORTHWIND_ROLES,
    Secrets,
    World,
    fits_limits,
    literal,
    required_arguments,
    seed_world,
    selection,
)
from tests.support import GQL, _graphql_schema


async def _send(
    gql: GQL, world: World, role: str, document: str, variables: dict[str, Any] | None
) -> list[str]:
    """The leaks in the answer (after checking it is a coded GraphQL response)."""
    response = await gql.post(document, variables, token=world.tokens[role])
    try:
        body = response.json()
    except ValueError:
        body = None
    check_response(response.status_code, body, response.text)
    sent = document + json.dumps(variables)
    return world.secrets[role].found_in(body, sent)


def _leak_report(role: str, document: str, variables: Any, leaks: list[str], body: str = "") -> str:
    return f"as {role}: {leaks}\n{document}\nvariables: {variables!r}\n{body[:3000]}"


# --- the deterministic sweep: every root query, every leaf, the foreign ids -------------

# Which Node type an ID argument names (`id`: the field's own type).
ARGUMENT_TYPES = {
    "partnerId": ("Partner",),
    "contestId": ("Contest",),
    "repId": ("User",),
    "repUserId": ("User",),
    "participantId": ("Partner", "User"),
    "pilotId": ("Pilot",),
    "ruleId": ("IncentiveRule",),
    "versionId": ("IncentiveRuleVersion",),
    "endpointId": ("WebhookEndpoint",),
}


@cache
def full_document(name: str, arguments: str) -> str:
    """The root field with every leaf of its type selected, as deep as the limits allow."""
    schema = _graphql_schema()
    assert schema.query_type is not None
    f = schema.query_type.fields[name]
    for depth in range(8, 0, -1):
        document = f"{{ {name}{arguments} {selection(f.type, depth)} }}"
        if fits_limits(document):
            return document
    raise AssertionError(f"{name}: no selection fits the limits")


def sweep_requests(
    secrets: Secrets, per_type: int, own: dict[str, list[str]] | None = None
) -> list[str]:
    """Every root query: once with its required arguments only, and once per id of each ID
    argument's type: those the caller may not read, and ``own`` (its vendor's: a partner
    asking about its own program's contests with another partner as the participant);
    ``node`` once per id the caller may not read, of every Node type."""
    schema = _graphql_schema()
    assert schema.query_type is not None
    types = node_types()
    ids = secrets.global_ids(types, per_type)
    for type_name, type_ids in (own or {}).items():
        ids[type_name] = [*ids.get(type_name, []), *type_ids]
    out = []
    for name, f in sorted(schema.query_type.fields.items()):
        if name == "node":
            for type_ids in ids.values():
                for i in type_ids:
                    out.append(f'{{ node(id: "{i}") {{ __typename id }} }}')
            continue
        required = required_arguments(f)
        id_args = [a for a, arg in f.args.items() if graphql.get_named_type(arg.type).name == "ID"]
        fixed = {a: literal(a, arg.type) for a, arg in required.items() if a not in id_args}
        if None in fixed.values():
            continue
        own = graphql.get_named_type(f.type).name
        for probe in [None, *id_args]:
            if probe is None and any(a in required for a in id_args):
                continue
            candidates = [None] if probe is None else [
                i for t in ARGUMENT_TYPES.get(probe, (own,)) for i in ids.get(t, [])
            ]  # fmt: skip
            for value in candidates:
                args = dict(fixed)
                for a in id_args:
                    if a == probe:
                        args[a] = f'"{value}"'
                    elif a in required:
                        args[a] = f'"{candidates[0]}"'
                arguments = f"({', '.join(f'{k}: {v}' for k, v in args.items())})" if args else ""
                out.append(full_document(name, arguments))
    return out


SWEEP_IDS_PER_TYPE = 3
# The probes reach the data: each vendor's admin, sent the same documents, reads each kind
# of record its first partner's users must not (so a clean answer to them is the rules at
# work, not an empty field): the other partner's (Globex of Northwind, Wingtip of Contoso)
# and the vendor's internal ones.
PRIVATE_KINDS = ("sale_claim", "deal_registration", "earning_entry", "payout_statement",
                 "payout_hold", "incentive_rule_firing", "attachment", "user")  # fmt: skip
INTERNAL_KINDS = (
    "a pilot arm",
    "a staff notice",
    "a vendor-only signal",
    "vendor-internal partner.internal_notes",
    "vendor-internal payout_hold.internal_note",
    "vendor-internal pilot",
    "vendor-internal incentive_rule",
    "vendor-internal partner_group",
)
CONTROLS = {  # (the admin, reading as if it were this partner role): what it must read
    ("admin@northwind.example", "admin@acme.example"): (
        *(f"Globex Systems's {kind}" for kind in PRIVATE_KINDS),
        "Globex Systems's invitation",
        *INTERNAL_KINDS,
    ),
    ("admin@contoso.example", "admin@fabrikam.example"): (
        *(f"Wingtip Traders's {kind}" for kind in PRIVATE_KINDS),
        *INTERNAL_KINDS,
    ),
}
ROLES = (*NORTHWIND_ROLES, *CONTOSO_ROLES)


@pytest.mark.slow
async def test_every_root_query_with_foreign_ids_leaks_nothing(
    gql: GQL, services: Services, settings: Settings, clock: OffsetClock
) -> None:
    world = await seed_world(gql, services, settings, clock)
    failures = []
    sent = 0
    for role in ROLES:
        for document in sweep_requests(
            world.secrets[role], SWEEP_IDS_PER_TYPE, world.own_ids[role]
        ):
            sent += 1
            leaks = await _send(gql, world, role, document, None)
            if leaks:
                failures.append(_leak_report(role, document, None, leaks))
    assert sent > 500
    for (admin, partner_role), kinds in CONTROLS.items():
        world.secrets["control"] = world.secrets[partner_role]
        world.tokens["control"] = world.tokens[admin]
        seen = set()
        for document in sweep_requests(world.secrets[admin], 1, world.own_ids[admin]):
            found = await _send(gql, world, "control", document, None)
            seen |= {leak.split(":")[0] for leak in found}
        assert not [c for c in kinds if not any(s.startswith(c) for s in seen)], (admin, seen)
    assert not failures, f"{len(failures)} leaking answers of {sent}:\n" + "\n\n".join(
        failures[:20]
    )


# --- the generated campaign ------------------------------------------------------------

POOLS: dict[str, Pool] = {}


@cache
def _scalars_for(role: str) -> Any:
    pool = POOLS.setdefault(role, Pool())
    ids = st.one_of(
        st.integers(0, 10**6).map(lambda i: nodes.String(pool.ids[i % len(pool.ids)])),
        st.integers(0, 10**6).map(lambda i: nodes.String(pool.ids[i % len(pool.ids)])),
        st.integers(0, 10**6).map(lambda i: nodes.String(pool.ids[i % len(pool.ids)])),
        st.sampled_from(MALFORMED_IDS).map(nodes.String),
    )

    def build() -> dict[str, Any]:
        return custom_scalars(ids)

    return build


@st.composite
def operations(draw: st.DrawFn, kind: str, role: str) -> tuple[str, DocumentNode]:
    name = draw(st.sampled_from(root_fields(kind)))
    return name, draw(strategy(kind, name, False, _scalars_for(role)))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["query", "mutation"])
async def test_generated_documents_leak_nothing(
    kind: str, gql: GQL, services: Services, settings: Settings, clock: OffsetClock
) -> None:
    world = await seed_world(gql, services, settings, clock)
    types = node_types()
    for role in ROLES:
        # The ids it must not read (every type), and now and then one of its own.
        pool = POOLS.setdefault(role, Pool())
        pool.ids = [i for ids in world.secrets[role].global_ids(types, 20).values() for i in ids]
    loop = asyncio.get_running_loop()

    async def run(role: str, document: DocumentNode) -> None:
        sends: list[tuple[DocumentNode, dict[str, Any] | None]] = [(document, None)]
        variables = as_variables(kind, document)
        if variables is not None:
            sends.append(variables)
        for doc, values in sends:
            source = graphql.print_ast(doc)
            async with services.outbox.paused(), services.webhooks.paused():
                leaks = await _send(gql, world, role, source, values)
            assert not leaks, _leak_report(role, source, values, leaks)

    @hypothesis_settings(150)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        role = data.draw(st.sampled_from(ROLES))
        _name, document = data.draw(operations(kind, role))
        asyncio.run_coroutine_threadsafe(run(role, document), loop).result(timeout=120)

    if SEED:
        check = seed(SEED)(check)
    await asyncio.to_thread(check)
