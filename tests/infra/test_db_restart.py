"""A PostgreSQL server of the test's own, stopped and started under a pool: while it
shuts down or starts up it refuses connections with SQLSTATE 57P03 ("the database system
is shutting down" / "... is starting up"), which is an outage (SERVICE_UNAVAILABLE, the
dispatcher's pass uncharged), not a bug; once it is back the same pool answers. Skipped
where no PostgreSQL server binaries are installed (``tests.private_postgres``)."""

from __future__ import annotations

import pytest
from graphql import GraphQLError
from sqlalchemy import text

from infra.db import Database
from infra.outages import is_unavailable
from infra.outbox import is_transient
from schema.extensions import MaskUnexpectedErrors
from tests.private_postgres import PrivatePostgres

pytestmark = pytest.mark.slow


async def _select_one(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(text("SELECT 1"))).scalar_one())


async def test_a_server_shutting_down_or_starting_is_an_outage_then_the_pool_recovers(
    private_postgres: PrivatePostgres,
) -> None:
    holder = Database(private_postgres.url)
    db = Database(private_postgres.url)
    try:
        assert await _select_one(db) == 1
        await db.dispose()  # new connections from here on
        async with holder.session() as session:
            await session.execute(text("SELECT 1"))  # a session the smart stop waits for
            private_postgres.pg_ctl("-m", "smart", "-W", "stop")
            error: BaseException | None = None
            try:
                await _select_one(db)
            except Exception as exc:  # noqa: BLE001 - what it raises is what is classified
                error = exc
            assert error is not None, "the server took a new connection while shutting down"
            assert "shutting down" in str(error)
            # Before, a plain DBAPIError: masked as INTERNAL_SERVER_ERROR with a traceback,
            # and charged to the dispatcher's events.
            assert is_unavailable(error)
            assert is_transient(error)
            answered = MaskUnexpectedErrors().anonymise_error(
                GraphQLError("x", original_error=error)
            )
            assert answered.extensions == {"code": "SERVICE_UNAVAILABLE", "retryAfterSeconds": 2}
        await holder.dispose()  # the last session gone: the server stops
        private_postgres.pg_ctl("-m", "fast", "-w", "-t", "60", "stop")  # wait for it
        private_postgres.pg_ctl("-w", "-t", "60", "start")
        assert await _select_one(db) == 1  # the same pool, once the server is back
    finally:
        await holder.dispose()
        await db.dispose()
