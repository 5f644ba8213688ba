"""Fuzzing the whole schema through GraphQL over HTTP (hypothesis-graphql), as the anonymous
caller, a partner rep, a partner admin and a vendor admin of the demo program: every
response is GraphQL-over-HTTP JSON whose errors all carry a code, no error is a masked bug
(INTERNAL_SERVER_ERROR, or INVALID_VALUE: a value the database refused), nothing is logged
as an error, a mutation that is refused (a GraphQL error, or userErrors) changes no row,
and the app answers afterwards.

Generated values are literals in the document, and the root field's arguments are sent
again as variables (scalars parse a literal and a variable on different paths). ID
arguments get real global ids of the demo's rows (of their type and of others), raw UUIDs
and malformed ids, besides arbitrary text.

CI runs a small, derandomized campaign. A large one by hand (the size, the roles, and
whether it also sends documents with one schema violation, from the environment)::

    CHANNELBOARD_FUZZ_EXAMPLES=2000 CHANNELBOARD_FUZZ_SEED=7 CHANNELBOARD_FUZZ_NEGATIVE=1 \\
      CHANNELBOARD_FUZZ_MORE_ROLES=manager@northwind.example,finance@northwind.example \\
      CHANNELBOARD_FUZZ_STATS=1 .venv/bin/python -m pytest tests/api/test_fuzz.py -m slow -x -q -s
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import graphql
import pytest
from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    NameNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableDefinitionNode,
    VariableNode,
)
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries
from sqlalchemy import text
from sqlmodel import select

from api.cli.demo import seed_demo
from api.settings import Settings
from infra.clock import OffsetClock
from migrations.metadata import target_metadata
from partners.models import User
from schema.context import Services
from tests.support import GQL, _graphql_schema

EXAMPLES = int(os.environ.get("CHANNELBOARD_FUZZ_EXAMPLES", "0"))  # 0: the CI campaign
SEED = int(os.environ.get("CHANNELBOARD_FUZZ_SEED", "0"))
NEGATIVE = os.environ.get("CHANNELBOARD_FUZZ_NEGATIVE", "") not in ("", "0")

ROLES = ("anonymous", "rep@acme.example", "admin@acme.example", "admin@northwind.example") + tuple(
    r for r in os.environ.get("CHANNELBOARD_FUZZ_MORE_ROLES", "").split(",") if r
)  # e.g. manager@northwind.example,finance@northwind.example

# Codes that are bugs in disguise: a masked exception, and a value the database refused
# (a validation gap: schema.extensions logs both).
BUG_CODES = {"INTERNAL_SERVER_ERROR", "INVALID_VALUE"}

# Written by the app whatever the request's fate: who was active (signals), a key's
# lastUsedAt, the dispatcher's own bookkeeping.
UNFINGERPRINTED = {
    "signal_active_user",
    "api_key",
    "outbox_dispatcher",
    "outbox_lease",
    "outbox_partition",
}

# Node types whose table is not their name in snake case.
TABLE_OF = {
    "User": "user_account",
    "CustomerSubscription": "subscription",
    "RuleFiring": "incentive_rule_firing",
    "SaleEvent": "earning_source",
}


@dataclass
class Pool:
    """The values the ID strategy draws from; filled once the demo is seeded (strategies
    are built at import, the ids exist only in the test)."""

    ids: list[str] = field(default_factory=lambda: ["x"])


POOL = Pool()
# CHANNELBOARD_FUZZ_STATS=1 (with -s): how many responses per role and error codes.
STATS: dict[tuple[str, str], int] | None = {} if os.environ.get("CHANNELBOARD_FUZZ_STATS") else None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


MALFORMED_IDS = [
    "",
    " ",
    "null",
    "0",
    "-1",
    "9" * 400,
    "Partner:",
    _b64(b"Partner:"),
    _b64(b"Partner:not-a-uuid"),
    _b64(b":" + str(uuid.UUID(int=1)).encode()),
    _b64(b"NoSuchType:" + str(uuid.UUID(int=1)).encode()),
    _b64(b"Partner:" + str(uuid.UUID(int=0)).encode()),
    _b64(b"\xff\xfe\x00:\x80"),
    _b64(b"Partner\x00:" + str(uuid.uuid4()).encode()),
    "====",
    "%%%",
    "UGFydG5lcjo",  # unpadded
    str(uuid.uuid4()),
    "a" * 10_000,
    "\u0000",
    "💥:💥",
]


def id_values() -> st.SearchStrategy[graphql.ValueNode]:
    real = st.integers(min_value=0, max_value=10**6).map(
        lambda i: nodes.String(POOL.ids[i % len(POOL.ids)])
    )
    return st.one_of(
        real,
        real,
        st.sampled_from(MALFORMED_IDS).map(nodes.String),
        st.text(max_size=30).map(nodes.String),
        st.integers().map(nodes.Int),
    )


def instant_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
        st.datetimes().map(datetime.isoformat),
        st.sampled_from(
            [
                "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59+00:00",
                "9999-12-31T23:59:59-14:00",
                "0001-01-01T00:00:00+14:00",
                "2027-02-30T00:00:00Z",
                "2027-01-01T24:00:00Z",
                "2027-01-01T00:00:00+25:00",
                "2027-W01-1",
                "",
                "now",
            ]
        ),
        st.text(max_size=30),
    )


def date_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.dates().map(lambda d: d.isoformat()),
        st.sampled_from(["0001-01-01", "9999-12-31", "2027-02-29", "2027-13-01", "", "-1"]),
        st.text(max_size=12),
    )


def big_ints() -> st.SearchStrategy[graphql.ValueNode]:
    return st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63),
        st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 10**30, -(10**30)]),
    ).map(nodes.Int)


CUSTOM_SCALARS: dict[str, st.SearchStrategy[graphql.ValueNode]] = {
    "ID": id_values(),
    "DateTime": instant_texts().map(nodes.String),
    "Date": date_texts().map(nodes.String),
    "Upload": st.text(max_size=5).map(nodes.String),
    "JSON": st.text(max_size=20).map(nodes.String),
    "MinorUnits": big_ints(),
    "Score": big_ints(),
}


def _identity(document: DocumentNode) -> DocumentNode:
    return document


@cache
def _strategy(kind: str, name: str, negative: bool) -> st.SearchStrategy[DocumentNode]:
    build = queries if kind == "query" else mutations
    return build(
        _graphql_schema(),
        fields=[name],
        custom_scalars=CUSTOM_SCALARS,
        print_ast=_identity,
        mode=Mode.NEGATIVE if negative else Mode.POSITIVE,
    )


def _root_fields(kind: str) -> list[str]:
    schema = _graphql_schema()
    root = schema.query_type if kind == "query" else schema.mutation_type
    assert root is not None
    return sorted(root.fields)


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
    return kind, name, draw(_strategy(kind, name, negative))


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
    operation = OperationDefinitionNode(
        operation=operation.operation,
        name=operation.name,
        variable_definitions=operation.variable_definitions,
        directives=operation.directives,
        selection_set=SelectionSetNode(selections=tuple(out)),
    )
    return DocumentNode(definitions=(operation,))


def _as_variables(kind: str, document: DocumentNode) -> tuple[DocumentNode, dict[str, Any]] | None:
    """The same document with the root field's arguments as variables (None when a value
    cannot be one: a variable is never a literal of another type, as negative mode makes)."""
    schema = _graphql_schema()
    root = schema.query_type if kind == "query" else schema.mutation_type
    assert root is not None
    [operation] = document.definitions
    assert isinstance(operation, OperationDefinitionNode)
    definitions: list[VariableDefinitionNode] = []
    variables: dict[str, Any] = {}
    out = []
    for selection in operation.selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.name.value not in root.fields:
            return None
        arguments = []
        for argument in selection.arguments or ():
            definition = root.fields[selection.name.value].args.get(argument.name.value)
            if definition is None:
                return None
            var = f"v{len(definitions)}"
            variables[var] = graphql.value_from_ast_untyped(argument.value)
            definitions.append(
                VariableDefinitionNode(
                    variable=VariableNode(name=NameNode(value=var)),
                    type=graphql.parse_type(str(definition.type)),
                )
            )
            arguments.append(
                ArgumentNode(name=argument.name, value=VariableNode(name=NameNode(value=var)))
            )
        out.append(
            FieldNode(
                alias=selection.alias,
                name=selection.name,
                arguments=tuple(arguments),
                directives=selection.directives,
                selection_set=selection.selection_set,
            )
        )
    if not definitions:
        return None
    operation = OperationDefinitionNode(
        operation=operation.operation,
        name=operation.name,
        variable_definitions=tuple(definitions),
        directives=operation.directives,
        selection_set=SelectionSetNode(selections=tuple(out)),
    )
    return DocumentNode(definitions=(operation,)), variables


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


def check_response(status: int, body: Any, raw: str) -> list[dict[str, Any]]:
    """A GraphQL-over-HTTP response (application/json): 200, `data` and/or `errors`,
    each error a message with a code that is not a bug's. The errors."""
    assert status == 200, raw[:2000]
    assert isinstance(body, dict), raw[:2000]
    assert set(body) <= {"data", "errors", "extensions"}, body
    assert body.keys() & {"data", "errors"}, body
    errors = body.get("errors") or []
    assert isinstance(errors, list)
    for error in errors:
        assert isinstance(error.get("message"), str), error
        code = (error.get("extensions") or {}).get("code")
        assert isinstance(code, str), f"an error without a code: {error}"
        assert code, f"an error without a code: {error}"
        assert code not in BUG_CODES, error
    return list(errors)


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
        as_variables = _as_variables(kind, document)
        if as_variables is not None:
            sends.append(as_variables)
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


async def seeded_campaign(
    gql: GQL, services: Services, settings: Settings, clock: OffsetClock
) -> Campaign:
    await seed_demo(settings, clock)
    ids: list[str] = []
    schema = _graphql_schema()
    node_types = sorted(
        t.name
        for t in schema.type_map.values()
        if isinstance(t, graphql.GraphQLObjectType) and any(i.name == "Node" for i in t.interfaces)
    )
    tokens: dict[str, str | None] = {"anonymous": None}
    async with services.db.session() as session:
        for type_name in node_types:
            table = TABLE_OF.get(type_name) or re.sub(r"(?<!^)(?=[A-Z])", "_", type_name).lower()
            if table not in target_metadata().tables:
                continue
            rows = await session.execute(text(f'SELECT id FROM "{table}" LIMIT 20'))
            for (row_id,) in rows.all():
                ids.append(str(graphql_id(type_name, row_id)))
        for role in ROLES[1:]:
            user = (await session.exec(select(User).where(User.email == role))).one()
            tokens[role] = gql.token(user)
    assert ids
    # Every id once as another type's too (a Partner's id sent where a User's is expected).
    ids += [graphql_id("Partner", uuid.UUID(_decode(i).split(":", 1)[1])) for i in ids[::7]]
    POOL.ids = ids
    return Campaign(gql=gql, services=services, tokens=tokens)


def graphql_id(type_name: str, row_id: object) -> str:
    return base64.b64encode(f"{type_name}:{uuid.UUID(str(row_id))}".encode()).decode()


def _decode(global_id: str) -> str:
    return base64.b64decode(global_id).decode()


HYPOTHESIS = settings(
    max_examples=EXAMPLES or 60,
    deadline=None,
    derandomize=not SEED,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


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
