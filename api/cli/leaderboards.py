"""`channelboard leaderboards ...` and `channelboard simulate`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from redis.asyncio import Redis
from rich.console import Console
from rich.progress import Progress, TaskID
from sqlmodel import col, select

from api.settings import Settings
from infra.clock import SystemClock
from infra.db import Database
from infra.outbox import Dispatcher
from infra.redis import EmbeddedRedis, _responds, connect
from leaderboards.consumer import Leaderboards
from leaderboards.models import Contest, ContestStatus

if TYPE_CHECKING:
    from schema.context import Services

app = typer.Typer(help="Contest leaderboards: rebuild standings from the SQL ledger.")
console = Console(stderr=True, soft_wrap=True)


@dataclass
class Wiring:
    services: Services
    leaderboards: Leaderboards

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def redis(self) -> Redis:
        return self.services.redis

    @property
    def outbox(self) -> Dispatcher:
        return self.services.outbox


@contextlib.asynccontextmanager
async def wiring(settings: Settings) -> AsyncIterator[Wiring]:
    """Database, Redis (the configured one, or the running server's embedded one, or a fresh
    embedded one) and the app's services for commands outside the server: the same outbox
    handlers as the app (``register_event_handlers``), so an event this command dispatches
    is credited, scored and announced exactly as the server would, and the same table-change
    notices, so a running server's read caches hear of this command's commits at once."""
    from api.app import build_services, register_event_handlers  # noqa: PLC0415
    from schema.leaderboards.runtime import leaderboards_runtime  # noqa: PLC0415

    embedded = None
    url = settings.redis_url
    if url is None:
        sock = (settings.var_dir / "redis" / "redis.sock").resolve()
        if sock.exists() and _responds(f"unix://{sock}"):
            url = f"unix://{sock}"
        else:
            embedded = EmbeddedRedis(settings.var_dir / "redis")
            url = await asyncio.to_thread(embedded.start)
    db = Database(settings.database_url)
    redis = connect(url)
    services = build_services(settings, db=db, redis=redis, clock=SystemClock())
    register_event_handlers(services)
    sharing = asyncio.create_task(db.epochs.share(services.hub), name="table-epochs")
    # Subscribed before the first commit, so that commit's notice goes out (share() returns
    # once subscribed; it retries meanwhile, and the server's cache TTL covers a miss).
    await asyncio.wait({sharing}, timeout=5)
    try:
        yield Wiring(services, leaderboards_runtime(services))
    finally:
        if not sharing.done():
            sharing.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sharing
        await services.hub.drain()
        await services.hub.close()
        await redis.aclose()
        await db.dispose()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _rebuild(settings: Settings, contest: str | None) -> int:
    from leaderboards.rebuild import rebuild  # noqa: PLC0415

    async with wiring(settings) as w:
        async with w.db.session() as session:
            stmt = select(Contest).where(Contest.status == ContestStatus.SCHEDULED)
            if contest:
                try:
                    stmt = select(Contest).where(Contest.id == uuid.UUID(contest))
                except ValueError:
                    stmt = select(Contest).where(col(Contest.name) == contest)
            contests = list(await session.exec(stmt))
        if not contests:
            console.print(f"[red]no such contest: {contest}[/red]" if contest else "no contests")
            return 1 if contest else 0
        with Progress(console=console) as progress:
            for c in contests:
                task = progress.add_task(c.name, total=None)

                def step(done: int, total: int, task: TaskID = task) -> None:
                    progress.update(task, completed=done, total=max(total, 1))

                replayed = await rebuild(
                    w.db, w.leaderboards.boards, SystemClock(), c.id, progress=step
                )
                progress.update(task, completed=1, total=1)
                version = await w.leaderboards.boards.version(c.id)
                await w.leaderboards.notify(c.id, version)
                console.print(f"{c.name}: {replayed} credits replayed (version {version})")
        return 0


@app.command()
def rebuild(
    contest: str | None = typer.Argument(None, help="Contest id or name; default: all live."),
) -> None:
    """Rebuild standings in Redis from the SQL credit ledger (after a flush or failover)."""
    from api.cli import load_settings  # noqa: PLC0415

    raise typer.Exit(asyncio.run(_rebuild(load_settings(), contest)))


async def _simulate(settings: Settings, rate: float, count: int | None) -> int:
    from deal_registration.sales.simulate import NoDemoData, Simulator  # noqa: PLC0415

    # One line per import would drown the progress lines.
    logging.getLogger("deal_registration.sales.serials").setLevel(logging.WARNING)
    async with wiring(settings) as w:
        storage = w.services.storage
        assert storage is not None  # build_services always configures one
        simulator = Simulator(w.db, w.services.clock, storage)
        try:
            await simulator.load()
        except NoDemoData as exc:
            console.print(f"[red]{exc}[/red]")
            return 1
        console.print(
            f"approving about {rate:g} demo sales per second as sale claims of "
            f"{', '.join(simulator.partner_names)} (Ctrl-C stops)"
        )
        every = max(int(rate), 1)
        done = 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        while count is None or done < count:
            sale = await simulator.one()
            # This process dispatches its own events (to every handler the app registers);
            # a running server's dispatcher may race it for them, as server workers race
            # each other: the handlers are idempotent.
            await w.outbox.dispatch_pending()
            done += 1
            if done % every == 0 or done == count:
                console.print(f"{done} sales approved (last: {sale.describe()})")
            delay = started + done / rate - loop.time()
            if delay > 0 and (count is None or done < count):
                await asyncio.sleep(delay)
        return 0


def simulate(
    rate: float = typer.Option(2.0, "--rate", min=0.1, max=1000, help="Sales per second."),
    count: int | None = typer.Option(None, "--count", min=1, help="Stop after this many."),
) -> None:
    """Approve a stream of realistic demo sales (real sale claims by the demo partners'
    users, on freshly shipped serials) so the demo leaderboards and earnings move."""
    from api.cli import load_settings  # noqa: PLC0415

    code = 0
    with contextlib.suppress(KeyboardInterrupt):
        code = asyncio.run(_simulate(load_settings(), rate, count))
    raise typer.Exit(code)
