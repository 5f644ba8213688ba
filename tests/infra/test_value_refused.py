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


async def test_a_data_exception_of_our_own_sql_stays_an_internal_error(db: Database) -> None:
    """SQLSTATE class 22 is also what our own statements raise with no client value in
    them (a division by zero, a cast of a constant, an interval overflowing): a bug, which
    must not be told to the client as its input being refused."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's SQLSTATEs")
    ours = [
        await _refused(db, "SELECT 1 / (SELECT count(*) FROM probe)", {}),  # 22012
        await _refused(db, "SELECT CAST('not-a-uuid' AS uuid)", {}),  # 22P02
        await _refused(db, "SELECT generate_series(1, 3, 0)", {}),  # 22023
    ]
    for error in ours:
        assert not value_refused(error), repr(error)
        masked = MaskUnexpectedErrors().anonymise_error(
            GraphQLError("raw", original_error=error, path=["leaderboard"])
        )
        assert masked.extensions == {"code": "INTERNAL_SERVER_ERROR"}
