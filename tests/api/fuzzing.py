"""What the schema fuzz campaigns share (tests/api/test_fuzz.py, test_isolation_fuzz.py):
hypothesis-graphql strategies for one root field per document with ID arguments drawn
from a pool of real ids (filled once the data is seeded), custom scalars, the same
document with its root arguments as variables, the global ids of seeded rows, real values
for the arguments and input fields that name existing things (``real_values``: a serial,
a SKU, an invoice number, an e-mail, a group's name, an id of the type the field names),
the check that a response is coded GraphQL-over-HTTP JSON, and the hypothesis settings."""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import graphql
import sqlalchemy as sa
from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    ListValueNode,
    NameNode,
    ObjectFieldNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    StringValueNode,
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
    """The values the ID strategy draws from (``ids``) and ``real_values`` puts in fields
    that name things (``ids_of``: global ids by type name; ``strings``: values by argument
    or input field name); filled once the data is seeded (strategies are built at import,
    the rows exist only in the test). Hashed by identity: each campaign's strategies are
    its own."""

    ids: list[str] = field(default_factory=lambda: ["x"])
    ids_of: dict[str, list[str]] = field(default_factory=dict)
    strings: dict[str, list[str]] = field(default_factory=dict)


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


def _table_of(type_name: str) -> str:
    return TABLE_OF.get(type_name) or re.sub(r"(?<!^)(?=[A-Z])", "_", type_name).lower()


def node_types() -> dict[str, str]:
    """Every Node type of the schema with a table of its own: type name -> table."""
    schema = _graphql_schema()
    out = {}
    for t in schema.type_map.values():
        if isinstance(t, graphql.GraphQLObjectType) and any(i.name == "Node" for i in t.interfaces):
            table = _table_of(t.name)
            if table in target_metadata().tables:
                out[t.name] = table
    return dict(sorted(out.items()))


@cache
def id_types() -> dict[str, str]:
    """Every type whose global ids the API hands out, with a table of its own: the Node
    types, and the object types with an ``id: ID!`` that are not nodes (a payout hold, a
    decision, a proof file, a rule's or a program's version, a contest winner, a vendor:
    their ids are arguments, never ``node(id:)``). Type name -> table."""
    schema = _graphql_schema()
    out = dict(node_types())
    for t in schema.type_map.values():
        if (
            isinstance(t, graphql.GraphQLObjectType)
            and not t.name.startswith("__")
            and "id" in t.fields
            and str(t.fields["id"].type) == "ID!"
        ):
            table = _table_of(t.name)
            if table in target_metadata().tables:
                out.setdefault(t.name, table)
    return dict(sorted(out.items()))


async def ids_by_type(
    session: AsyncSession, where: str = "", limit: int = 20
) -> dict[str, list[str]]:
    """Global ids of up to ``limit`` rows of every id type's table (``id_types``; ``where``:
    an SQL condition on the table's rows), by type name (the types with rows only)."""
    out: dict[str, list[str]] = {}
    for type_name, table in id_types().items():
        condition = f" WHERE {where}" if where else ""
        rows = await session.execute(text(f'SELECT id FROM "{table}"{condition} LIMIT {limit}'))
        ids = [graphql_id(type_name, row_id) for (row_id,) in rows.all()]
        if ids:
            out[type_name] = ids
    return out


# --- real values for the fields that name things -----------------------------------------

REAL_VALUE_ODDS = 3  # a field that names things gets a real value one time in this many
REAL_PER_OWNER = 12  # values of one column kept per vendor (or in all, without a vendor_id)
REAL_MAX_LENGTH = 200


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


# String fields whose column is not named after them: a search is for part of a name.
COLUMN_ALIASES = {"search": "name"}
# ID fields named for the role of a user rather than its type.
USER_WORDS = {"Manager", "Rep", "Participant"}


@cache
def _text_columns() -> dict[str, tuple[str, ...]]:
    """Column name -> the tables with a text column (enums aside) or a JSON one (a list of
    labels, e.g. a partner's tags) of that name."""
    out: dict[str, list[str]] = {}
    for table in target_metadata().tables.values():
        for column in table.c:
            kind = column.type
            if isinstance(kind, sa.types.TypeDecorator):
                kind = kind.impl_instance
            if isinstance(kind, sa.JSON) or (
                isinstance(kind, sa.String) and not isinstance(kind, sa.Enum)
            ):
                out.setdefault(column.name, []).append(table.name)
    return {name: tuple(sorted(tables)) for name, tables in out.items()}


def columns_for(name: str) -> tuple[str, ...]:
    """The text columns a String argument or input field names, best first: its own name
    in snake case (``invoiceNumber``: invoice_number), singular for a list (``serials``:
    serial) or plural for one of a list column (``tag``: tags), then its last word
    (``vendorSlug``: slug). Empty when no table has such a column."""
    if name in COLUMN_ALIASES:
        return (COLUMN_ALIASES[name],)
    snake = _snake(name)
    last = snake.rsplit("_", 1)[-1]
    candidates = (snake, _singular(snake), snake + "s", last, _singular(last))
    return tuple(dict.fromkeys(c for c in candidates if c in _text_columns()))


def _texts(value: object) -> list[str]:
    """A text column's value, or the labels of a JSON list of them."""
    if isinstance(value, str) and value.startswith(("[", "{")):
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    if isinstance(value, dict) or value is None:
        return []
    return [str(value)]


@cache
def _input_sites() -> tuple[frozenset[str], frozenset[str]]:
    """The names of the String and of the ID arguments and input fields of the schema."""
    schema = _graphql_schema()
    strings: set[str] = set()
    ids: set[str] = set()

    def add(fields: dict[str, Any]) -> None:
        for name, definition in fields.items():
            kind = graphql.get_named_type(definition.type)
            if kind is graphql.GraphQLString:
                strings.add(name)
            elif kind is graphql.GraphQLID:
                ids.add(name)

    for t in schema.type_map.values():
        if t.name.startswith("__"):
            continue
        if isinstance(t, graphql.GraphQLObjectType):
            for f in t.fields.values():
                add(f.args)
        elif isinstance(t, graphql.GraphQLInputObjectType):
            add(t.fields)
    return frozenset(strings), frozenset(ids)


async def real_strings(session: AsyncSession) -> dict[str, list[str]]:
    """For every String argument or input field that names a column (``columns_for``: the
    first of them with values), the values of that column in every table that has it: up
    to ``REAL_PER_OWNER`` of each vendor's rows (so another vendor's serials, SKUs and
    invoice numbers too), sorted."""
    metadata = target_metadata()
    columns = sorted({c for name in _input_sites()[0] for c in columns_for(name)})
    by_table: dict[str, list[str]] = {}
    for column in columns:
        for table in _text_columns()[column]:
            by_table.setdefault(table, []).append(column)
    found: dict[str, set[str]] = {}
    for table, names in sorted(by_table.items()):  # one read of each table
        owner = "vendor_id" if "vendor_id" in metadata.tables[table].c else "NULL"
        selected = ", ".join(f'"{c}"' for c in names)
        rows = (await session.execute(text(f'SELECT {owner}, {selected} FROM "{table}"'))).all()
        for i, column in enumerate(names, start=1):
            kept: dict[str, list[str]] = {}
            for vendor, value in sorted((str(r[0]), t) for r in rows for t in _texts(r[i])):
                per_vendor = kept.setdefault(vendor, [])
                if len(per_vendor) < REAL_PER_OWNER and 0 < len(value) <= REAL_MAX_LENGTH:
                    per_vendor.append(value)
            found.setdefault(column, set()).update(v for vs in kept.values() for v in vs)
    values = {column: sorted(texts) for column, texts in found.items() if texts}
    out = {}
    for name in sorted(_input_sites()[0]):
        for column in columns_for(name):
            if column in values:
                out[name] = values[column]
                break
    return out


@cache
def types_named(name: str, parent: str | None) -> tuple[str, ...]:
    """The id types an ID argument or input field names: ``contestId`` a Contest, ``groupIds``
    a PartnerGroup, ``holdId`` a PayoutHold (the types whose name ends with the field's stem,
    else with its last word); ``id`` of ``PayoutStatementInput`` a PayoutStatement (the
    longest type name the input's starts with). Empty: any type."""
    types = id_types()
    if name == "id":
        if parent is None:
            return ()
        prefixes = [t for t in types if parent.startswith(t)]
        return (max(prefixes, key=len),) if prefixes else ()
    stem = re.sub(r"Ids?$", "", name)
    if stem == name:
        return ()
    for word in (stem[:1].upper() + stem[1:], re.split(r"(?=[A-Z])", stem)[-1].capitalize()):
        if word in USER_WORDS:
            return ("User", "Partner") if word == "Participant" else ("User",)
        found = tuple(t for t in types if t.endswith(word))
        if found:
            return found
    return ()


def real_values(
    documents: st.SearchStrategy[DocumentNode], kind: str, pool: Pool
) -> st.SearchStrategy[DocumentNode]:
    """The documents with, one time in ``REAL_VALUE_ODDS``, an existing thing in a field
    that names one: a String argument or input field a real value of its column
    (``Pool.strings``: an imported serial, one already claimed, another vendor's; a SKU, an
    invoice number, a user's e-mail, a group's name), an ID one a real id of the type it
    names (``Pool.ids_of``), so that the paths through existing records (duplicates,
    conflicts, serials already credited) are fuzzed too."""

    @st.composite
    def build(draw: st.DrawFn) -> DocumentNode:
        document = draw(documents)
        return _rewrite(document, kind, pool, draw)

    return build()


def _rewrite(document: DocumentNode, kind: str, pool: Pool, draw: st.DrawFn) -> DocumentNode:
    schema = _graphql_schema()
    root = schema.query_type if kind == "query" else schema.mutation_type
    assert root is not None
    [operation] = document.definitions
    if not isinstance(operation, OperationDefinitionNode):
        return document
    out = []
    for selection in operation.selection_set.selections:
        if isinstance(selection, FieldNode) and selection.name.value in root.fields:
            definitions = root.fields[selection.name.value].args
            arguments = tuple(
                ArgumentNode(
                    name=a.name,
                    value=_real_value(
                        a.value, definitions[a.name.value].type, a.name.value, None, pool, draw
                    ),
                )
                if a.name.value in definitions
                else a
                for a in selection.arguments or ()
            )
            selection = FieldNode(
                alias=selection.alias,
                name=selection.name,
                arguments=arguments,
                directives=selection.directives,
                selection_set=selection.selection_set,
            )
        out.append(selection)
    return with_selections(operation, out)


def with_selections(
    operation: OperationDefinitionNode, selections: list[SelectionNode]
) -> DocumentNode:
    """The one-operation document of ``operation`` with ``selections`` at its root."""
    return DocumentNode(
        definitions=(
            OperationDefinitionNode(
                operation=operation.operation,
                name=operation.name,
                variable_definitions=operation.variable_definitions,
                directives=operation.directives,
                selection_set=SelectionSetNode(selections=tuple(selections)),
            ),
        )
    )


def _real_value(
    node: graphql.ValueNode,
    kind: graphql.GraphQLInputType,
    name: str,
    parent: str | None,
    pool: Pool,
    draw: st.DrawFn,
) -> graphql.ValueNode:
    kind = graphql.get_nullable_type(kind)
    if isinstance(kind, graphql.GraphQLList):
        if isinstance(node, ListValueNode):
            return ListValueNode(
                values=tuple(
                    _real_value(v, kind.of_type, name, parent, pool, draw) for v in node.values
                )
            )
        return _real_value(node, kind.of_type, name, parent, pool, draw)
    if isinstance(kind, graphql.GraphQLInputObjectType) and isinstance(node, ObjectValueNode):
        fields = tuple(
            ObjectFieldNode(
                name=f.name,
                value=_real_value(
                    f.value, kind.fields[f.name.value].type, f.name.value, kind.name, pool, draw
                ),
            )
            if f.name.value in kind.fields
            else f
            for f in node.fields
        )
        return ObjectValueNode(fields=fields)
    if not isinstance(node, StringValueNode):
        return node
    if kind is graphql.GraphQLString:
        choices = pool.strings.get(name, [])
    elif kind is graphql.GraphQLID:
        choices = [i for t in types_named(name, parent) for i in pool.ids_of.get(t, [])]
    else:
        return node
    if not choices or draw(st.integers(0, REAL_VALUE_ODDS - 1)) != 0:
        return node
    return nodes.String(choices[draw(st.integers(0, len(choices) - 1))])


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
