"""Empty databases of the suite's kind (SQLite by default, PostgreSQL in CI) for the
migration tests, dropped after each test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from infra.db import is_sqlite


@pytest.fixture
async def new_scratch_database(
    database_url: str, tmp_path: Path
) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Make an empty database of the same kind as the suite's (its URL), as often as the
    test asks."""
    made: list[str] = []

    async def new() -> str:
        if is_sqlite(database_url):
            made.append(f"scratch{len(made)}")
            return f"sqlite+aiosqlite:///{tmp_path / made[-1]}.db"
        url = make_url(database_url)
        name = f"{url.database}_mig_{uuid.uuid4().hex[:6]}"
        admin = await _admin(database_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        made.append(name)
        return url.set(database=name).render_as_string(hide_password=False)

    yield new
    if is_sqlite(database_url) or not made:
        return
    admin = await _admin(database_url)
    try:
        for name in made:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _admin(database_url: str) -> asyncpg.Connection:
    url = make_url(database_url)
    return await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        database="postgres",
    )  # fmt: skip


@pytest.fixture
async def scratch_url(new_scratch_database: Callable[[], Awaitable[str]]) -> str:
    """An empty database of the same kind as the suite's."""
    return await new_scratch_database()
