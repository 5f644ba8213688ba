"""One pass of a clock-driven job over many units of work (a vendor, a quarter, a mail):
each unit runs on its own (its own transaction, opened by ``work``), and a unit that
raises is logged with its key and skipped until the next pass, so that one vendor whose
data the job cannot process does not stop every vendor after it, every pass, forever.
Redis or the database out of reach is nobody's data: the pass ends there with one warning
line (every unit after it would meet the same outage, each with a traceback). A unit whose
transaction the database ended for contention (a deadlock broken, a lock or statement
timeout, a session ended idle: ``infra.outages.to_run_again``) is no bug either: one
warning line, and the pass goes on."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from infra.outages import first_line, is_unavailable, to_run_again

T = TypeVar("T")

log = logging.getLogger(__name__)


async def each(
    job: str,
    units: Iterable[T],
    work: Callable[[T], Awaitable[int]],
    *,
    expected: tuple[type[Exception], ...] = (),
    key: Callable[[T], object] = lambda unit: unit,
) -> int:
    """Run ``work`` on every unit in order; returns the sum of what the calls returned.
    ``expected`` are failures that are part of the job (another process did the unit
    first): noted at INFO, not as errors. ``key`` names a unit in the log (its id)."""
    total = 0
    for unit in units:
        try:
            total += await work(unit)
        except asyncio.CancelledError:
            raise
        except expected:
            log.info("%s: %s was done elsewhere", job, key(unit))
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("%s: %s; the pass ends, retried next pass", job, exc)
                break
            if to_run_again(exc):  # the unit's transaction met contention: no bug, one line
                log.warning(
                    "%s: %s: the database ended its transaction for contention (%s); "
                    "retried next pass", job, key(unit), first_line(exc),
                )  # fmt: skip
                continue
            log.exception(
                "%s failed for %s; going on with the next, retried next pass", job, key(unit)
            )
    return total


async def every(job: str, interval: float, work: Callable[[], Awaitable[object]]) -> None:
    """Run ``work`` every ``interval`` seconds, forever (a clock job). The first pass waits
    a random part of the interval, so processes started together do not run it at once. A
    pass that fails is logged (one line for an outage, a traceback for anything else) and
    the job goes on: the next pass tries again."""
    await asyncio.sleep(random.uniform(0, interval))  # noqa: S311 - spreading, not secrecy
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("%s: %s; retried next pass", job, exc)
            else:
                log.exception("%s failed; retried next pass", job)
        await asyncio.sleep(interval)
