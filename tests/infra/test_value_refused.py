"""A value PostgreSQL refuses (a string over its column's length, a number beyond its
type) reaching the database is a gap in a service's validation. The client is told its
input was refused (INVALID_VALUE), not that the server failed (INTERNAL_SERVER_ERROR); the
transaction rolled back and the gap is logged. Real PostgreSQL errors, from real statements."""

from __future__ import annotations

import pytest
from graphql import GraphQLError
from sqlalchemy import text

from infra.db import Database
from infra.outages import value_refused
from schema.extensions import MaskUnexpectedErrors


async def _refused(db: Database, statement: str, parameters: dict[str, object]) -> Exception:
    """The error the driver raises for the statement (whatever its type)."""
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TEMP TABLE probe (v varchar(3), n integer)"))
            await session.execute(text(statement), parameters)
    except Exception as error:  # noqa: BLE001 - the very thing under test
        return error
    raise AssertionError("the database took it")


async def test_a_value_the_database_refuses_is_the_clients_invalid_value(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL: SQLite enforces neither lengths nor these ranges")
    too_long = await _refused(db, "INSERT INTO probe (v) VALUES (:v)", {"v": "abcd"})
    too_big = await _refused(db, "INSERT INTO probe (n) VALUES (:n)", {"n": 2**40})
    for error in (too_long, too_big):
        assert value_refused(error), repr(error)
        masked = MaskUnexpectedErrors().anonymise_error(
            GraphQLError("raw", original_error=error, path=["productUpsert"])
        )
        assert masked.extensions == {"code": "INVALID_VALUE"}
        assert masked.path == ["productUpsert"]
    assert not value_refused(ValueError("a bug of ours"))
