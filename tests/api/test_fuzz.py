"""Fuzzing the whole schema through GraphQL over HTTP (hypothesis-graphql), as the anonymous
caller, a partner rep, a partner admin and a vendor admin of the demo program: every
response is GraphQL-over-HTTP JSON whose errors all carry a code, no error is a masked bug
(INTERNAL_SERVER_ERROR, or INVALID_VALUE: a value the database refused), nothing is logged
as an error, a mutation that is refused (a GraphQL error, or userErrors) changes no row,
and the app answers afterwards.

Generated values are literals in the document, and the root field's arguments are sent
again as variables (scalars parse a literal and a variable on different paths). ID
arguments get real global ids of the demo's rows (of every type with a global id,
``fuzzing.id_types``; of their type and of others), raw UUIDs and malformed ids, besides
arbitrary text. Arguments and input fields that name things get, one time in three, a
real value (``fuzzing.real_values``): an ID field the id of the type it names (``holdId``:
a payout hold), a String field a value of the column it names (``serials``: imported
serials, credited ones, Contoso's; ``sku``, ``invoiceNumber``, ``email``, ``name``,
``idempotencyKey``, ...), so that duplicates, conflicts and records of another vendor are
reached. The demo is seeded, then what it leaves out (``seed_more``: a pilot, groups,
rules, programs' versions, an API key, Contoso's catalogue and serials).

CI runs a small, derandomized campaign. A large one by hand (the size, the roles, and
whether it also sends documents with one schema violation, from the environment)::

    CHANNELBOARD_FUZZ_EXAMPLES=2000 CHANNELBOARD_FUZZ_SEED=7 CHANNELBOARD_FUZZ_NEGATIVE=1 \\
      CHANNELBOARD_FUZZ_MORE_ROLES=manager@northwind.example,finance@northwind.example \\
      CHANNELBOARD_FUZZ_STATS=1 .venv/bin/python -m pytest tests/api/test_fuzz.py -m slow -x -q -s
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

import graphql
import pytest
from graphql import DocumentNode, FieldNode, OperationDefinitionNode, SelectionSetNode
from hypothesis import given, seed
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import select

from api.cli.demo import seed_demo
from api.settings import Settings
from catalogue import demo as catalogue_demo
from deal_registration.sales.demo import DEMO_SKU
from deal_registration.sales.serials import import_serials
from infra.clock import OffsetClock
from migrations.metadata import target_metadata
from partners.models import Partner, User, Vendor
from partners.roles import Role
from schema.context import Services
from tests.api.fuzzing import (
    SEED,
    Pool,
    as_variables,
    check_response,
    custom_scalars,
    decode_id,
    graphql_id,
    hypothesis_settings,
    id_values,
    ids_by_type,
    real_strings,
    real_values,
    root_fields,
    strategy,
    with_selections,
)
from tests.api.isolation import enrich_vendor
from tests.factories import principal_of
from tests.support import GQL, _graphql_schema

NEGATIVE = os.environ.get("CHANNELBOARD_FUZZ_NEGATIVE", "") not in ("", "0")

ROLES = ("anonymous", "rep@acme.example", "admin@acme.example", "admin@northwind.example") + tuple(
    r for r in os.environ.get("CHANNELBOARD_FUZZ_MORE_ROLES", "").split(",") if r
)  # e.g. manager@northwind.example,finance@northwind.example

# Written by the app whatever the request's fate: who was active (signals), a key's
# lastUsedAt, the dispatcher's own bookkeeping.
UNFINGERPRINTED = {
    "signal_active_user",
    "api_key",
    "outbox_dispatcher",
    "outbox_lease",
    "outbox_partition",
}

POOL = Pool()
# CHANNELBOARD_FUZZ_STATS=1 (with -s): how many responses per role and error codes.
STATS: dict[tuple[str, str], int] | None = {} if os.environ.get("CHANNELBOARD_FUZZ_STATS") else None


@cache
def _scalars() -> dict[str, Any]:
    return custom_scalars(id_values(POOL))


def _strategy(kind: str, name: str, negative: bool) -> st.SearchStrategy[DocumentNode]:
    return strategy(kind, name, negative, _scalars)


def _root_fields(kind: str) -> list[str]:
    return root_fields(kind)


@cache
def _violable(kind: str) -> frozenset[str]:
    """Root fields negative mode has something to violate in."""
    from hypothesis_graphql._strategies.negative_sites import (  # noqa: PLC0415
        enumerate_violation_sites,
    )

    schema = _graphql_schema()
    root = schema.query_type if kind == "query" else schema.mutation_type
    assert root is not None
    return frozenset(site.path[0].field_name for site in enumerate_violation_sites(schema, root))


@st.composite
def operations(draw: st.DrawFn, kind: str) -> tuple[str, str, DocumentNode]:
    """(kind, root field, document): one root field per document, so that a refused
    mutation is one whose effects must be none."""
    name = draw(st.sampled_from(_root_fields(kind)))
    negative = NEGATIVE and name in _violable(kind) and draw(st.integers(0, 4)) == 0
    return kind, name, draw(real_values(_strategy(kind, name, negative), kind, POOL))


def _with_user_errors(document: DocumentNode) -> DocumentNode:
    """Select the root mutation field's userErrors (when its payload has them), so that a
    refusal is always seen."""
    schema = _graphql_schema()
    assert schema.mutation_type is not None
    [operation] = document.definitions
    assert isinstance(operation, OperationDefinitionNode)
    out = []
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode) and selection.name.value in schema.mutation_type.fields:
            payload = graphql.get_named_type(schema.mutation_type.fields[selection.name.value].type)
            if isinstance(payload, graphql.GraphQLObjectType) and "userErrors" in payload.fields:
                extra = graphql.parse("{ userErrors { field code message } }").definitions[0]
                assert isinstance(extra, OperationDefinitionNode)
                selections = (
                    list(selection.selection_set.selections) if selection.selection_set else []
                )
                selections.append(extra.selection_set.selections[0])
                selection = FieldNode(
                    alias=selection.alias,
                    name=selection.name,
                    arguments=selection.arguments,
                    directives=selection.directives,
                    selection_set=SelectionSetNode(selections=tuple(selections)),
                )
        out.append(selection)
    return with_selections(operation, out)


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def logged_errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


async def fingerprint(services: Services) -> dict[str, str]:
    """A digest of every table's rows (but the few the app writes on any request)."""
    out: dict[str, str] = {}
    async with services.db.session() as session:
        for name in sorted(target_metadata().tables):
            if name in UNFINGERPRINTED:
                continue
            rows = (await session.execute(text(f'SELECT * FROM "{name}"'))).all()
            digest = hashlib.sha256("\n".join(sorted(map(repr, rows))).encode()).hexdigest()
            out[name] = digest
    return out


def refused(name: str, body: dict[str, Any]) -> bool:
    value = (body.get("data") or {}).get(name)
    if value is None:
        return True
    return isinstance(value, dict) and bool(value.get("userErrors"))


@dataclass
class Campaign:
    gql: GQL
    services: Services
    tokens: dict[str, str | None]

    async def send(
        self, role: str, document: str, variables: dict[str, Any] | None
    ) -> tuple[int, Any, str]:
        response = await self.gql.post(document, variables, token=self.tokens[role])
        try:
            body = response.json()
        except ValueError:
            body = None
        if STATS is not None and isinstance(body, dict):
            codes = {str((e.get("extensions") or {}).get("code")) for e in body.get("errors") or []}
            key = (role, ",".join(sorted(codes)) or "ok")
            STATS[key] = STATS.get(key, 0) + 1
        return response.status_code, body, response.text

    async def run(self, role: str, kind: str, name: str, document: DocumentNode) -> None:
        if kind == "mutation":
            document = _with_user_errors(document)
        sends: list[tuple[DocumentNode, dict[str, Any] | None]] = [(document, None)]
        as_variables_ = as_variables(kind, document)
        if as_variables_ is not None:
            sends.append(as_variables_)
        for doc, variables in sends:
            source = graphql.print_ast(doc)
            context = f"as {role}:\n{source}\nvariables: {variables!r}"
            with logged_errors() as log:
                if kind == "mutation":
                    async with self.services.outbox.paused(), self.services.webhooks.paused():
                        before = await fingerprint(self.services)
                        status, body, raw = await self.send(role, source, variables)
                        check_response(status, body, raw)
                        if refused(name, body):
                            after = await fingerprint(self.services)
                            changed = [t for t in before if before[t] != after[t]]
                            assert not changed, f"refused, yet changed {changed}: {body}\n{context}"
                else:
                    status, body, raw = await self.send(role, source, variables)
                    try:
                        check_response(status, body, raw)
                    except AssertionError as exc:
                        raise AssertionError(f"{exc}\n{context}") from None
            assert not log.records, (
                f"logged: {[r.getMessage() for r in log.records]}\n"
                f"{[r.exc_info for r in log.records]}\n{context}"
            )
        # The app keeps answering.
        status, body, raw = await self.send(role, "{ __typename }", None)
        assert status == 200, raw
        assert body == {"data": {"__typename": "Query"}}, raw


CONTOSO_SERIALS = ("CTS-FUZZ-000001", "CTS-FUZZ-000002", "CTS-FUZZ-000003")


async def seed_more(gql: GQL, services: Services, clock: OffsetClock) -> None:
    """What the demo leaves out, so that the pool holds ids of those types and values of
    those columns too: for Northwind a partner group with a started pilot (its arms),
    incentive rules and their versions, programs and their versions, a second admin and
    an API key (``isolation.enrich_vendor``); for Contoso its catalogue and a few serials of its
    own (another vendor's serials and SKUs)."""
    async with services.db.transaction() as session:
        vendors = {v.slug: v for v in (await session.exec(select(Vendor))).all()}
        partners = (
            await session.exec(select(Partner).where(Partner.vendor_id == vendors["northwind"].id))
        ).all()
        contoso = vendors["contoso"]
        await catalogue_demo.seed(session, clock, contoso)
        admin = (
            await session.exec(
                select(User).where(User.vendor_id == contoso.id, User.role == Role.VENDOR_ADMIN)
            )
        ).first()
        assert admin is not None
        shipped = (clock.now() - timedelta(days=40)).date()
        rows = ["serial,sku,shipped_to,region,shipped_at"] + [
            f"{serial},{DEMO_SKU},,APAC,{shipped}" for serial in CONTOSO_SERIALS
        ]
        await import_serials(
            session, principal_of(admin), clock, source=io.BytesIO("\n".join(rows).encode())
        )
    await enrich_vendor(
        gql, services, clock, vendors["northwind"], sorted(partners, key=lambda p: p.name)
    )


async def seeded_campaign(
    gql: GQL, services: Services, settings: Settings, clock: OffsetClock
) -> Campaign:
    await seed_demo(settings, clock)
    await seed_more(gql, services, clock)
    tokens: dict[str, str | None] = {"anonymous": None}
    async with services.db.session() as session:
        ids_of = await ids_by_type(session)
        strings = await real_strings(session)
        for role in ROLES[1:]:
            user = (await session.exec(select(User).where(User.email == role))).one()
            tokens[role] = gql.token(user)
    ids = [i for type_ids in ids_of.values() for i in type_ids]
    assert ids
    # Every id once as another type's too (a Partner's id sent where a User's is expected).
    ids += [graphql_id("Partner", uuid.UUID(decode_id(i).split(":", 1)[1])) for i in ids[::7]]
    POOL.ids, POOL.ids_of, POOL.strings = ids, ids_of, strings
    return Campaign(gql=gql, services=services, tokens=tokens)


HYPOTHESIS = hypothesis_settings(60)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["query", "mutation"])
async def test_no_generated_operation_is_a_bug(
    kind: str, gql: GQL, services: Services, settings: Settings, clock: OffsetClock
) -> None:
    campaign = await seeded_campaign(gql, services, settings, clock)
    loop = asyncio.get_running_loop()

    # Hypothesis drives the examples from a thread; each runs on the app's event loop.
    @HYPOTHESIS
    @given(role=st.sampled_from(ROLES), operation=operations(kind))
    def check(role: str, operation: tuple[str, str, DocumentNode]) -> None:
        future = asyncio.run_coroutine_threadsafe(campaign.run(role, *operation), loop)
        future.result(timeout=120)

    if SEED:
        check = seed(SEED)(check)
    await asyncio.to_thread(check)
    if STATS is not None:
        for (role, codes), count in sorted(STATS.items()):
            print(f"{role:32} {codes:40} {count}")  # noqa: T201
