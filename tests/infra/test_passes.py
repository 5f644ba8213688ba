"""A clock-driven job's pass over its units (``infra.passes.each``): a unit that fails is
logged and skipped; Redis or the database out of reach ends the pass with one line."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from infra.db import Database
from infra.passes import each, every
from tests.factories import Tenant
from tests.infra.test_outbox_contention import POSTGRESQL
from tests.infra.test_outbox_contention import _database_locked as database_locked
from tests.support import eventually


async def test_a_failing_unit_is_logged_and_the_others_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[int] = []

    async def work(unit: int) -> int:
        if unit == 2:
            raise ValueError("bad data")
        done.append(unit)
        return 1

    assert await each("job", [1, 2, 3], work) == 2
    assert done == [1, 3]
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


async def test_an_outage_ends_the_pass_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Before, every unit after the outage failed the same way, each with a traceback at
    ERROR (a board check over every live contest while Redis was down)."""
    tried: list[int] = []

    async def work(unit: int) -> int:
        tried.append(unit)
        raise RedisConnectionError("Connection refused")

    caplog.set_level(logging.INFO)
    assert await each("job", [1, 2, 3], work) == 0
    assert tried == [1]
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.WARNING, None)]


@pytest.mark.parametrize("kind", [*POSTGRESQL, "database_locked"])
async def test_contention_in_a_unit_is_one_warning_and_the_pass_goes_on(
    db: Database, tenant: Tenant, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """Contention met for real (``tests.infra.test_outbox_contention``'s cases). Before, a
    traceback at ERROR, as for a bug in the unit's data."""
    if db.url.startswith("postgresql") != (kind in POSTGRESQL):
        pytest.skip("PostgreSQL's timeouts" if kind in POSTGRESQL else "SQLite's busy timeout")
    contention = POSTGRESQL.get(kind, database_locked)
    done: list[int] = []

    async def work(unit: int) -> int:
        if unit == 2:
            await contention(db, tenant)
            raise AssertionError(f"{kind}: the database ended nothing")
        done.append(unit)
        return 1

    caplog.set_level(logging.INFO, logger="infra.passes")
    # asyncpg reports a session the server ended for idleness as a closed connection: an
    # outage, which ends the pass (with one line too).
    ends = kind == "idle_in_transaction"
    assert await each("job", [1, 2, 3], work) == (1 if ends else 2)
    assert done == ([1] if ends else [1, 3])
    lines = [(r.levelno, r.exc_info) for r in caplog.records if r.name == "infra.passes"]
    assert lines == [(logging.WARNING, None)]


async def test_a_clock_job_whose_pass_fails_goes_on_with_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``every``: a pass that raises is logged (an outage in one line, anything else with
    its traceback) and the job runs again; it ends only when cancelled."""
    passes: list[int] = []

    async def work() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            raise ValueError("bad data")
        if len(passes) == 2:
            raise RedisConnectionError("Redis is down")

    async def ran_three() -> bool:
        return len(passes) >= 3

    job = asyncio.create_task(every("the sweep", 0.001, work))
    await eventually(ran_three)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    failed = [r for r in caplog.records if r.name == "infra.passes"]
    assert [(r.levelno, r.exc_info is not None) for r in failed[:2]] == [
        (logging.ERROR, True), (logging.WARNING, False),
    ]  # fmt: skip
    assert "the sweep failed" in failed[0].getMessage()
    assert "the sweep: Redis is down" in failed[1].getMessage()
