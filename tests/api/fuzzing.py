"""What the schema fuzz campaigns share (tests/api/test_fuzz.py, test_isolation_fuzz.py):
hypothesis-graphql strategies for one root field per document with ID arguments drawn
from a pool of real ids (filled once the data is seeded), custom scalars, the same
document with its root arguments as variables, the global ids of seeded rows, the check
that a response is coded GraphQL-over-HTTP JSON, and the hypothesis settings."""

from __future__ import annotations

import base64
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import graphql
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
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from migrations.metadata import target_metadata
from tests.support import _graphql_schema

EXAMPLES = int(os.environ.get("CHANNELBOARD_FUZZ_EXAMPLES", "0"))  # 0: the CI campaign
SEED = int(os.environ.get("CHANNELBOARD_FUZZ_SEED", "0"))

# Codes that are bugs in disguise: a masked exception, and a value the database refused
# (a validation gap: schema.extensions logs both).
BUG_CODES = {"INTERNAL_SERVER_ERROR", "INVALID_VALUE"}

# Node types whose table is not their name in snake case.
TABLE_OF = {
    "User": "user_account",
    "CustomerSubscription": "subscription",
    "RuleFiring": "incentive_rule_firing",
    "SaleEvent": "earning_source",
}


@dataclass(eq=False)
class Pool:
    """The values the ID strategy draws from; filled once the data is seeded (strategies
    are built at import, the ids exist only in the test). Hashed by identity: each
    campaign's strategies are its own."""

    ids: list[str] = field(default_factory=lambda: ["x"])


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


def id_values(pool: Pool, *, real_weight: int = 2) -> st.SearchStrategy[graphql.ValueNode]:
    """Real ids of the pool (``real_weight`` times as likely as each of the others),
    malformed ids, arbitrary text and integers."""
    real = st.integers(min_value=0, max_value=10**6).map(
        lambda i: nodes.String(pool.ids[i % len(pool.ids)])
    )
    return st.one_of(
        *[real] * real_weight,
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


def custom_scalars(
    ids: st.SearchStrategy[graphql.ValueNode],
) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    return {
        "ID": ids,
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
def strategy(
    kind: str, name: str, negative: bool, scalars: Callable[[], dict[str, Any]]
) -> st.SearchStrategy[DocumentNode]:
    """Documents of one root field (``scalars()``: the custom scalars, built once)."""
    build = queries if kind == "query" else mutations
    return build(
        _graphql_schema(),
        fields=[name],
        custom_scalars=scalars(),
        print_ast=_identity,
        mode=Mode.NEGATIVE if negative else Mode.POSITIVE,
    )


def root_fields(kind: str) -> list[str]:
    schema = _graphql_schema()
    root = schema.query_type if kind == "query" else schema.mutation_type
    assert root is not None
    return sorted(root.fields)


def as_variables(kind: str, document: DocumentNode) -> tuple[DocumentNode, dict[str, Any]] | None:
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


def graphql_id(type_name: str, row_id: object) -> str:
    return base64.b64encode(f"{type_name}:{uuid.UUID(str(row_id))}".encode()).decode()


def decode_id(global_id: str) -> str:
    return base64.b64decode(global_id).decode()


def node_types() -> dict[str, str]:
    """Every Node type of the schema with a table of its own: type name -> table."""
    schema = _graphql_schema()
    out = {}
    for t in schema.type_map.values():
        if isinstance(t, graphql.GraphQLObjectType) and any(i.name == "Node" for i in t.interfaces):
            table = TABLE_OF.get(t.name) or re.sub(r"(?<!^)(?=[A-Z])", "_", t.name).lower()
            if table in target_metadata().tables:
                out[t.name] = table
    return dict(sorted(out.items()))


async def node_ids(session: AsyncSession, where: str = "", limit: int = 20) -> list[str]:
    """Global ids of up to ``limit`` rows of every Node type's table (``where``: an SQL
    condition on the table's rows)."""
    ids = []
    for type_name, table in node_types().items():
        condition = f" WHERE {where}" if where else ""
        rows = await session.execute(text(f'SELECT id FROM "{table}"{condition} LIMIT {limit}'))
        for (row_id,) in rows.all():
            ids.append(graphql_id(type_name, row_id))
    return ids


def hypothesis_settings(default_examples: int) -> settings:
    return settings(
        max_examples=EXAMPLES or default_examples,
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
