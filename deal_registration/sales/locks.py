"""Write locks where SQLite needs them."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession


async def lock_for_write(session: AsyncSession) -> None:
    """On SQLite, take the database write lock now, before reading what we will decide on.

    A deferred SQLite transaction that reads first and writes later fails at once
    ("database is locked", SQLITE_BUSY_SNAPSHOT) when another connection committed in
    between, instead of waiting; taking the lock first makes it wait its turn (busy
    timeout) and then read fresh data. Call it as the operation's first statement.
    PostgreSQL needs nothing here (row locks and unique constraints do the work)."""
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        await connection.execute(text("UPDATE serial_credit SET serial = serial WHERE 0"))
