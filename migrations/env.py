"""Alembic environment: runs on the async engine of CHANNELBOARD_DATABASE_URL (or the
connection handed over by api.migrations)."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from migrations.metadata import target_metadata

config = context.config


def _configure(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch migration rebuilds a table (copy, drop, rename), and with foreign keys
        # enforced the drop fails on the rows of other tables that reference it. SQLite's
        # documented procedure: enforcement off outside the transaction (a PRAGMA inside
        # one does nothing; the raw connection, so no BEGIN comes first), then a
        # foreign_key_check before the migrations commit.
        cursor = connection.connection.cursor()
        cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        compare_type=True,
        render_as_batch=sqlite,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migrations left rows with broken references: {broken}")


async def _run_async() -> None:
    from infra.db import create_engine  # noqa: PLC0415

    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
        await connection.commit()
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _configure(connection)
else:
    asyncio.run(_run_async())
