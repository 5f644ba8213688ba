"""The executor's short path for plain attribute fields (schema/execution.py) answers
exactly as graphql-core's own path: the same data, and the same errors, messages, paths
and null propagation when a value is null where it may not be, refused by its scalar,
or raises; for whole sub-selections compiled once per document (lists included), and
for those it must not compile (fragments, directives, __typename)."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.execution import FastFieldsExecutor, executor_for
from schema.root import build_schema

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses


class Source:
    """What a resolver may hand back for an object type: anything with the attributes."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    @property
    def broken(self) -> int:
        raise ValueError("the attribute failed")


@strawberry.type
class Inner:
    n: int
    maybe: int | None
    label: str


@strawberry.type
class Outer:
    inner: Inner
    optional_inner: Inner | None
    n: int
    broken: int | None
    inners: list[Inner] | None = None
    maybe_inners: list[Inner | None] | None = None
    tags: list[str] | None = None


@strawberry.type
class Query:
    @strawberry.field
    def rows(self) -> list[Outer | None]:
        good = Source(n=1, maybe=None, label="a")
        return [
            Source(inner=good, optional_inner=good, n=1, broken=0),  # type: ignore[list-item]
            Source(inner=Source(n=None, maybe=2, label="b"), optional_inner=None, n=2),  # type: ignore[list-item]
            Source(inner=good, optional_inner=Source(n="x", maybe=1, label="c"), n=3),  # type: ignore[list-item]
            Source(inner=good, optional_inner=good, n=None),  # type: ignore[list-item]
            Source(inner=good, optional_inner=Source(n=1, maybe="2.5", label=7), n=5),  # type: ignore[list-item]
            Source(optional_inner=good, n=6),  # type: ignore[list-item]
        ]

    @strawberry.field
    def lists(self) -> list[Outer]:
        good = Source(n=1, maybe=None, label="a")
        bad = Source(n=None, maybe=2, label="b")
        return [
            Source(inners=[good, good], maybe_inners=[good, None], tags=["x", "y"]),  # type: ignore[list-item]
            Source(inners=[good, bad], maybe_inners=[None, bad], tags=["x", None]),  # type: ignore[list-item]
            Source(inners=[good, None], maybe_inners=(good,), tags=(1, 2)),  # type: ignore[list-item]
            Source(inners=None, maybe_inners=None, tags=None),  # type: ignore[list-item]
            Source(inners=good, maybe_inners={"a": good}, tags="xy"),  # type: ignore[list-item]
            Source(inners=iter([good]), maybe_inners=[ValueError("no")], tags=[ValueError()]),  # type: ignore[list-item]
        ]

    @strawberry.field
    async def later(self) -> Outer:
        return Source(inner=Source(n=1, maybe=None, label="z"), optional_inner=None, n=9)  # type: ignore[return-value]


QUERIES = [
    "{ rows { n inner { n maybe label } } }",
    "{ rows { optionalInner { n maybe label } } }",
    "{ rows { n broken } }",
    "{ rows { inner { label } optionalInner { label } } }",
    "{ later { n inner { n label } optionalInner { n } } }",
    "{ lists { inners { n label } } }",
    "{ lists { maybeInners { n maybe } tags } }",
    "{ lists { tags } }",
    "{ rows { a: n b: n inner { n } inner { label } i: inner { maybe } } }",
    "{ rows { n ... on Outer { inner { n } } } }",
    "{ rows { n inner { ...F } } } fragment F on Inner { n label }",
    "{ rows { n inner { n __typename } } }",
    "{ rows { n @include(if: true) inner { n @skip(if: true) label } } }",
]


def _counting(base: type[Any]) -> type[Any]:
    """``base``, counting the resolve infos it builds (one per field on the ordinary path)."""

    def build_resolve_info(self: Any, *args: Any) -> Any:
        type(self).infos += 1
        return base.build_resolve_info(self, *args)

    return type("Counting", (base,), {"infos": 0, "build_resolve_info": build_resolve_info})


@pytest.mark.parametrize("query", QUERIES)
async def test_the_short_path_answers_as_graphql_core_does(query: str) -> None:
    ordinary = strawberry.Schema(query=Query)
    ordinary.execution_context_class = _counting(StrawberryGraphQLCoreExecutionContext)
    fast = strawberry.Schema(query=Query)
    fast.execution_context_class = _counting(executor_for(fast))
    expected = await ordinary.execute(query)
    answered = await fast.execute(query)
    assert answered.data == expected.data
    assert [e.formatted for e in answered.errors or []] == [
        e.formatted for e in expected.errors or []
    ]
    # ... and the short path did answer fields
    assert fast.execution_context_class.infos < ordinary.execution_context_class.infos


async def test_a_compiled_selection_is_never_one_the_variables_change() -> None:
    """The sub-selections are compiled once per parsed document: one whose fields the
    variables choose (@skip, @include) is not compiled, and answers as graphql-core does
    for each request, whatever the one before it asked."""
    query = "query($s: Boolean!) { rows { inner { n @skip(if: $s) label } n @include(if: $s) } }"
    ordinary = strawberry.Schema(query=Query)
    fast = strawberry.Schema(query=Query)  # one schema, and its executor, for every request
    fast.execution_context_class = executor_for(fast)
    for skip in (True, False, True):
        expected = await ordinary.execute(query, variable_values={"s": skip})
        answered = await fast.execute(query, variable_values={"s": skip})
        assert answered.data == expected.data
        assert [e.formatted for e in answered.errors or []] == [
            e.formatted for e in expected.errors or []
        ]


def test_the_api_schema_uses_it_for_plain_fields() -> None:
    schema = build_schema()
    executor = schema.execution_context_class
    assert issubclass(executor, FastFieldsExecutor)
    row = schema._schema.type_map["LeaderboardRow"].fields  # type: ignore[union-attr]
    assert id(row["rank"]) in executor.plans
    assert id(row["participant"]) in executor.plans
    connection = schema._schema.type_map["LeaderboardConnection"].fields  # type: ignore[union-attr]
    assert id(connection["edges"]) in executor.lists
    # a resolver of its own, or permission classes: never
    query = schema._schema.type_map["Query"].fields  # type: ignore[union-attr]
    assert id(query["leaderboard"]) not in executor.plans
