"""Cleanups that a cancellation does not cut off, and stopping background tasks."""

from __future__ import annotations

import asyncio
import logging

import pytest

from infra.tasks import stop, to_completion, wind_down

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses


async def test_a_cleanup_runs_to_its_end_and_then_the_cancellation_is_raised() -> None:
    started, finish = asyncio.Event(), asyncio.Event()
    ended: list[str] = []

    async def cleanup() -> int:
        started.set()
        await finish.wait()
        ended.append("cleanup")
        return 1

    caller = asyncio.create_task(to_completion(cleanup()))
    await started.wait()
    for _ in range(2):  # cancelled, and cancelled again
        caller.cancel()
        await asyncio.sleep(0)
    assert not caller.done()
    finish.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert ended == ["cleanup"]


async def test_a_cleanup_uncancelled_returns_its_result() -> None:
    async def cleanup() -> int:
        await asyncio.sleep(0)
        return 7

    assert await to_completion(cleanup()) == 7


async def test_stop_waits_for_every_task_and_logs_one_that_fails_as_it_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = [asyncio.Event() for _ in range(3)]
    ended: list[str] = []

    async def job(i: int) -> None:
        running[i].set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # a cleanup that awaits (a rollback)
            ended.append(f"job-{i}")
            if i == 0:
                raise ValueError("failed while stopping")

    tasks = [asyncio.create_task(job(i), name=f"job-{i}") for i in range(3)]
    for event in running:
        await event.wait()
    with caplog.at_level(logging.ERROR, logger="infra.tasks"):
        await stop(tasks)
    assert sorted(ended) == ["job-0", "job-1", "job-2"]
    assert all(task.done() for task in tasks)
    assert [r.getMessage() for r in caplog.records] == ["job-0 failed as it stopped"]


async def test_stop_cancels_again_a_task_whose_cancellation_was_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A job loop that catches its cancellation by mistake (as a cancellation lost on
    Python 3.11 by ``asyncio.wait_for`` in a Redis or database call looks to the loop) runs
    on: stopping cancels it again rather than waiting for ever."""
    running = asyncio.Event()
    passes: list[str] = []

    async def loop() -> None:
        running.set()
        lost = False
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if lost:
                    raise
                lost = True  # the first cancellation never reaches the loop
                passes.append("ran on")

    task = asyncio.create_task(loop(), name="job-loop")
    await running.wait()
    with caplog.at_level(logging.WARNING, logger="infra.tasks"):
        # (The bound only ends the test if stopping hangs, as it did before.)
        await asyncio.wait_for(stop([task], recancel_after=0.05), 30)
    assert task.cancelled()
    assert passes == ["ran on"]
    assert [r.getMessage() for r in caplog.records] == [
        "job-loop runs on after its cancellation; cancelling it again"
    ]


async def test_winding_down_waits_for_the_task_and_returns_its_error() -> None:
    async def finishing() -> None:
        await asyncio.sleep(0.05)
        raise ValueError("its own")

    task = asyncio.create_task(finishing())
    error = await wind_down(task)
    assert isinstance(error, ValueError)
    assert task.done()


async def test_a_cancellation_while_winding_down_is_passed_on_not_swallowed() -> None:
    """The caller (a dispatcher's pass ending) is cancelled while it waits for the task (a
    live lane's run that takes its time): the task is cancelled too, and so is the caller,
    which a ``suppress(CancelledError)`` around ``await task`` would have let run on."""
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(slow())
    await started.wait()
    caller = asyncio.create_task(wind_down(task))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert task.cancelled()


async def test_a_caller_already_being_cancelled_cancels_the_task_at_once() -> None:
    task = asyncio.create_task(asyncio.sleep(3600))

    async def pass_then_cancelled() -> None:
        try:
            await asyncio.sleep(3600)
        finally:  # as the pass's ``finally`` runs when the process stops
            await wind_down(task)

    caller = asyncio.create_task(pass_then_cancelled())
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(caller, 5)
    assert task.cancelled()
