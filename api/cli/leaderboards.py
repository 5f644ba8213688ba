"""`channelboard leaderboards ...` and `channelboard simulate`."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import typer
from redis.asyncio import Redis
from rich.console import Console
from rich.progress import Progress, TaskID
from sqlmodel import col, select

from api.settings import Settings
from infra.clock import SystemClock
from infra.db import Database
from infra.outbox import Dispatcher
from infra.pubsub import Hub
from infra.redis import EmbeddedRedis, Keys, _responds, connect
from leaderboards.consumer import Leaderboards, runtime
from leaderboards.models import Contest, ContestStatus

app = typer.Typer(help="Contest leaderboards: rebuild standings from the SQL ledger.")
console = Console(stderr=True)


@dataclass
class Wiring:
    db: Database
    redis: Redis
    leaderboards: Leaderboards
    outbox: Dispatcher


@contextlib.asynccontextmanager
async def wiring(settings: Settings) -> AsyncIterator[Wiring]:
    """Database, Redis (the configured one, or the running server's embedded one, or a fresh
    embedded one) and the leaderboard runtime, for commands outside the server."""
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
    clock = SystemClock()
    keys = Keys(settings.redis_namespace)
    hub = Hub(redis, keys)
    rt = runtime(db, redis, keys, clock, hub)
    outbox = Dispatcher(db, clock)
    rt.register(outbox)
    try:
        yield Wiring(db, redis, rt, outbox)
    finally:
        await hub.close()
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


async def _simulate(settings: Settings, rate: float, count: int | None) -> None:
    from leaderboards.demo import simulate_one  # noqa: PLC0415
    from partners.demo import VENDOR_SLUG  # noqa: PLC0415
    from partners.models import Vendor  # noqa: PLC0415

    clock = SystemClock()
    async with wiring(settings) as w:
        async with w.db.session() as session:
            vendor = (await session.exec(select(Vendor).where(Vendor.slug == VENDOR_SLUG))).first()
        if vendor is None:
            console.print("[red]no demo data: run 'channelboard demo' first[/red]")
            raise typer.Exit(1)
        done = 0
        console.print(f"approving about {rate:g} demo sales per second (Ctrl-C stops)")
        while count is None or done < count:
            event = await simulate_one(w.db, clock, vendor)
            if event is None:
                console.print("[red]no demo partners or products[/red]")
                raise typer.Exit(1)
            await w.outbox.dispatch_pending()
            done += 1
            if done % max(int(rate), 1) == 0:
                console.print(f"{done} sales approved")
            await asyncio.sleep(1 / rate)


def simulate(
    rate: float = typer.Option(2.0, "--rate", min=0.1, max=1000, help="Sales per second."),
    count: int | None = typer.Option(None, "--count", help="Stop after this many."),
) -> None:
    """Approve a stream of realistic demo sales so the demo leaderboards move."""
    from api.cli import load_settings  # noqa: PLC0415

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_simulate(load_settings(), rate, count))
