"""Alembic environment: runs on the async engine of CHANNELBOARD_DATABASE_URL (or the
connection handed over by api.migrations)."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from migrations.metadata import target_metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


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
