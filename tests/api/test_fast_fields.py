"""The executor's short path for plain attribute fields (schema/execution.py) answers
exactly as graphql-core's own path: the same data, and the same errors, messages, paths
and null propagation when a value is null where it may not be, refused by its scalar,
or raises."""

from __future__ import annotations

from typing import Any

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema import build_schema
from schema.execution import FastFieldsExecutor, executor_for


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
    async def later(self) -> Outer:
        return Source(inner=Source(n=1, maybe=None, label="z"), optional_inner=None, n=9)  # type: ignore[return-value]


QUERIES = [
    "{ rows { n inner { n maybe label } } }",
    "{ rows { optionalInner { n maybe label } } }",
    "{ rows { n broken } }",
    "{ rows { inner { label } optionalInner { label } } }",
    "{ later { n inner { n label } optionalInner { n } } }",
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


def test_the_api_schema_uses_it_for_plain_fields() -> None:
    schema = build_schema()
    executor = schema.execution_context_class
    assert issubclass(executor, FastFieldsExecutor)
    row = schema._schema.type_map["LeaderboardRow"].fields  # type: ignore[union-attr]
    assert id(row["rank"]) in executor.plans
    assert id(row["participant"]) in executor.plans
    # a resolver of its own, or permission classes: never
    query = schema._schema.type_map["Query"].fields  # type: ignore[union-attr]
    assert id(query["leaderboard"]) not in executor.plans
