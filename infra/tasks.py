"""Ending asyncio work cleanly: a cleanup that a cancellation must not cut off (a
transaction's commit or rollback), the stop of a process's background tasks (the outbox
dispatcher, the clock jobs) before what they use (the engine) is disposed of, and a
cancellation that got lost on the way raised before a task waits on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


def raise_lost_cancellation() -> None:
    """Raise CancelledError in a task that was cancelled and runs on as if it had not been.
    Call it before waiting for something that may never come (a pub/sub message, a board
    push). On Python 3.11, ``asyncio.wait_for`` (which redis-py uses for its socket reads and
    writes) returns the result when it is cancelled as its awaitable completes: the
    cancellation is lost, and a websocket operation cancelled as its Redis subscription
    completed went on waiting for messages after its socket had closed, holding the
    connection's shutdown (and the listener) forever. Whoever catches a cancellation on
    purpose (``asyncio.timeout``, a TaskGroup) calls ``uncancel``, so ``cancelling()``
    counts only cancellations still owed."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def to_completion(cleanup: Coroutine[Any, Any, T]) -> T:
    """Await ``cleanup`` in a task of its own, to its end even when the calling task is
    cancelled meanwhile (once or repeatedly); a cancellation received while waiting is
    raised after it. A plain ``await`` would be cut off mid-statement, and
    ``asyncio.shield`` alone would return at once and leave the cleanup running in the
    background, past the engine's disposal."""
    task = asyncio.ensure_future(cleanup)
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError as err:
            if not task.done():
                cancelled = err
                continue
            if not task.cancelled():
                task.exception()  # retrieved: the cancellation is what the caller gets
            raise
        else:
            break
    if cancelled is not None:
        raise cancelled
    return result


async def wind_down(task: asyncio.Task[Any]) -> BaseException | None:
    """Wait for a task that was told to end (it finishes what it is doing) and return its
    exception, if any; but when the calling task is being cancelled, or is cancelled while
    it waits, cancel ``task`` too, wait for it, and let the cancellation go on: a plain
    ``await`` inside ``contextlib.suppress(CancelledError)`` would swallow the caller's
    own cancellation along with the task's, and a process would never stop."""
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        task.cancel()
    try:
        await asyncio.wait([task])
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait([task])
        raise
    return None if task.cancelled() else task.exception()


# A task still running this long after its cancellation is cancelled again.
RECANCEL_AFTER = 5.0


async def stop(
    tasks: Sequence[asyncio.Task[Any]], *, recancel_after: float = RECANCEL_AFTER
) -> None:
    """Cancel ``tasks`` and wait until every one of them has ended (they stop side by
    side), even when the caller is cancelled meanwhile: a job's transaction has then rolled
    back and returned its connection, so disposing of the engine next leaves no transaction
    (on SQLite: no write lock) behind. A task that ends with an error rather than its
    cancellation is logged, and the others are still awaited. A task still running
    ``recancel_after`` seconds on is cancelled again (and again): a job loop whose
    cancellation was lost on the way (see ``raise_lost_cancellation``: a Redis or database
    call racing it) runs on as if never told, and the process would never stop (CI,
    2026-12-07: an app's stop waited 300 s with its database out of reach)."""
    for task in tasks:
        task.cancel()
    await to_completion(_ended(tasks, recancel_after))


async def _ended(tasks: Sequence[asyncio.Task[Any]], recancel_after: float) -> None:
    pending = set(tasks)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=recancel_after)
        for task in pending:
            log.warning("%s runs on after its cancellation; cancelling it again", task.get_name())
            task.cancel()
    for task in tasks:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s failed as it stopped", task.get_name(), exc_info=error)
