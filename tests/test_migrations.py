"""The migration history upgrades and downgrades on the test's database kind (SQLite by
default, PostgreSQL in CI), and matches the models."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url

from api import migrations
from infra.db import create_engine, is_sqlite
from migrations.metadata import target_metadata


@pytest.fixture
async def scratch_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the same kind as the suite's."""
    if is_sqlite(database_url):
        yield f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}"
        return
    url = make_url(database_url)
    name = f"{url.database}_mig_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        database="postgres",
    )  # fmt: skip
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            return names - {"alembic_version"}
    finally:
        await engine.dispose()


async def _drift(url: str) -> list[object]:
    engine = create_engine(url)

    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, target_metadata()))

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def test_history_upgrades_and_downgrades_step_by_step(scratch_url: str) -> None:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert revisions, "no migrations"
    for revision in revisions:
        await migrations.upgrade(scratch_url, revision)
        assert await migrations.database_revision(scratch_url) == revision
    assert await _tables(scratch_url) == set(target_metadata().tables)
    for revision in reversed(revisions[:-1]):
        await migrations.downgrade(scratch_url, revision)
        assert await migrations.database_revision(scratch_url) == revision
    await migrations.downgrade(scratch_url, "base")
    assert await _tables(scratch_url) == set()
    await migrations.upgrade(scratch_url)  # and up again from nothing
    assert await migrations.database_revision(scratch_url) == migrations.head_revision()


async def test_models_and_migrations_agree(scratch_url: str) -> None:
    await migrations.upgrade(scratch_url)
    assert await _drift(scratch_url) == []


def test_one_head_and_dated_file_names() -> None:
    script = ScriptDirectory.from_config(migrations.alembic_config())
    assert len(script.get_heads()) == 1, "branched history: add a merge or re-chain"
    for path in (Path(migrations.MIGRATIONS_DIR) / "versions").glob("*.py"):
        assert path.name[:16].replace("-", "").replace("_", "")[:12].isdigit(), path.name
