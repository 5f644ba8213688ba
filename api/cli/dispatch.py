"""`channelboard dispatch`: the outbox dispatcher as a process of its own.

With ``CHANNELBOARD_DISPATCH=external`` the API processes only record events (and wake this
process over pub/sub); this process runs every handler the app registers: earnings
crediting, contest scoring, live notices; and it sends the webhook deliveries. Crediting
costs milliseconds per sale, which on an API process's event loop would delay every
request and live push queued behind it. Stopping it loses nothing: events (and webhook
deliveries) stay pending in SQL until a dispatcher runs again. With
CHANNELBOARD_OUTBOX_PARTITIONS above 1 (PostgreSQL) several of these processes share the
events, each leasing its share of the partitions (docs/dispatchers.md)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import typer
from rich.console import Console

from api.cli.settings import load_settings
from api.cli.wiring import running_redis_url, wiring
from api.settings import Settings
from infra.heap import freeze_startup_heap
from infra.tasks import stop

console = Console(stderr=True, soft_wrap=True)


async def _dispatch(settings: Settings, poll_interval: float) -> int:
    if running_redis_url(settings) is None:
        console.print(
            "[red]no Redis to share with the API processes[/red]: set CHANNELBOARD_REDIS_URL, "
            "or start `channelboard serve` (its embedded Redis) first"
        )
        return 2
    from api.composition import clock_jobs  # noqa: PLC0415 - loaded by wiring() in any case

    async with wiring(settings) as services:
        await services.outbox.listen(services.hub)
        freeze_startup_heap()
        console.print(f"dispatching outbox events (polling every {poll_interval:g} s)")
        loop = asyncio.get_running_loop()
        running = asyncio.create_task(services.outbox.run(poll_interval), name="outbox-dispatcher")
        # What the clock drives (contests and periods closing, ...): API processes running
        # with CHANNELBOARD_DISPATCH=external leave that to this process too.
        jobs = [
            asyncio.create_task(job, name=name)
            for name, job in clock_jobs(settings, services).items()
        ]
        # SIGTERM (a process manager stopping it) ends the loop between events, like Ctrl-C.
        loop.add_signal_handler(signal.SIGTERM, running.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await running
        # Every job has ended (its transaction rolled back) before the engine is disposed of.
        await stop(jobs)
    console.print("dispatcher stopped")
    return 0


def dispatch(
    poll_interval: float = typer.Option(
        1.0, "--poll-interval", min=0.05,
        help="Seconds between polls for events whose wake-up notice was lost.",
    ),
) -> None:  # fmt: skip
    """Dispatch outbox events for API processes that run with CHANNELBOARD_DISPATCH=external
    (a second one is a standby: one dispatcher at a time holds the outbox lease; with
    CHANNELBOARD_OUTBOX_PARTITIONS above 1 on PostgreSQL, several share the events)."""

    code = 0
    with contextlib.suppress(KeyboardInterrupt):
        code = asyncio.run(_dispatch(load_settings(), poll_interval))
    raise typer.Exit(code)
