"""asyncpg connections whose BEGIN can carry a statement: one round trip fewer.

SQLAlchemy's asyncpg adapter opens a transaction lazily: its first statement is preceded by
``BEGIN`` (asyncpg's ``Transaction.start``), sent on its own, as a simple query, in a round
trip of its own. A transaction whose first statement has no parameters and whose result is
not needed (a signal writer's ``pg_advisory_xact_lock`` on its vendor, ``signals.locks``)
can have it sent with that BEGIN, in the same simple query (``BEGIN …; SELECT …``): the
server runs them one after the other, so the statement is inside the transaction and
everything after it (the transaction's first statement of its own, with its snapshot)
runs once it has finished, waits included, exactly as if it had been sent alone. On a
loopback connection a round trip costs more CPU, both sides, than the statement itself
(docs/benchmarks.md, issue 13).

Should the carried statement fail (a lock wait cancelled by the server, a lock timeout),
the BEGIN fails with its error, as it would have, and the transaction it opened is rolled
back here, so the connection is left as a failed BEGIN leaves it: outside a transaction,
with nothing of asyncpg's pointing at the failed one. A cancellation of the waiting task
makes SQLAlchemy discard the connection, as for any statement.

Everything else is asyncpg (``connection_class``, a documented subclass point) and
SQLAlchemy's adapter.
"""

from __future__ import annotations

import contextlib
from typing import Any

import asyncpg


class OneTripConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection whose next BEGIN can carry a statement (``with_begin``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._with_begin: str | None = None

    def send_with_begin(self, sql: str) -> bool:
        """Send ``sql`` (no parameters, result unread) with the transaction's BEGIN, when
        that is still to come (True); else nothing (False: the caller runs it)."""
        if self.is_in_transaction() or self._with_begin is not None:
            return False
        self._with_begin = sql
        return True

    def forget_with_begin(self) -> None:
        """The transaction ended before its BEGIN was sent (it ran no statement): what was to
        go with it goes with no other."""
        self._with_begin = None

    async def execute(  # asyncpg's signature, which asyncpg's callers use
        self,
        query: str,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> str:
        carried = self._with_begin
        if carried is None or args or not query.startswith("BEGIN"):
            return await super().execute(query, *args, timeout=timeout)  # type: ignore[no-any-return]
        self._with_begin = None
        try:
            return await super().execute(  # type: ignore[no-any-return]
                f"{query.rstrip().rstrip(';')}; {carried}", timeout=timeout
            )
        except Exception:
            # The BEGIN, or what it carried, failed: the caller's BEGIN fails with it, so
            # nothing would end a transaction it opened (asyncpg still points at it).
            self._top_xact = None
            if not self.is_closed() and self.is_in_transaction():
                with contextlib.suppress(Exception):
                    await super().execute("ROLLBACK")
            raise


def with_begin(driver_connection: Any, sql: str) -> bool:
    """``OneTripConnection.send_with_begin`` for a connection of this class; for another,
    nothing (False: the caller runs ``sql``)."""
    if isinstance(driver_connection, OneTripConnection):
        return driver_connection.send_with_begin(sql)
    return False


def forget_with_begin(driver_connection: Any) -> None:
    if isinstance(driver_connection, OneTripConnection):
        driver_connection.forget_with_begin()
