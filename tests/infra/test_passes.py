"""A clock-driven job's pass over its units (``infra.passes.each``): a unit that fails is
logged and skipped; Redis or the database out of reach ends the pass with one line."""

from __future__ import annotations

import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from infra.passes import each


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
