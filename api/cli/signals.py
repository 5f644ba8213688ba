"""`channelboard signals rebuild`: recompute signal facts and snapshots from the source
tables (after a restore, a fix to a signal's formula, or to check the handlers)."""

from __future__ import annotations

import asyncio
import time

import typer
from rich.console import Console
from sqlmodel import col, select

from api.cli.settings import load_settings
from api.cli.wiring import wiring
from api.settings import Settings
from infra.db import begin_write
from partners.models import Vendor

app = typer.Typer(help="Partner signals: rebuild facts and snapshots from the source tables.")
console = Console(stderr=True, soft_wrap=True)


async def _rebuild(settings: Settings, vendor: str | None) -> int:
    from signals.maintenance import rebuild  # noqa: PLC0415

    async with wiring(settings) as services:
        async with services.db.session() as session:
            stmt = select(Vendor).order_by(col(Vendor.slug))
            if vendor is not None:
                stmt = stmt.where(Vendor.slug == vendor)
            vendors = list(await session.exec(stmt))
        if not vendors:
            console.print(f"[red]no such vendor: {vendor}[/red]" if vendor else "no vendors")
            return 1 if vendor else 0
        for v in vendors:
            started = time.perf_counter()
            async with services.db.transaction() as session:
                await begin_write(session)
                facts, snapshots = await rebuild(session, services.clock, v.id)
            console.print(
                f"{v.slug}: {facts} partner-days of facts, {snapshots} snapshots changed "
                f"({time.perf_counter() - started:.1f} s)"
            )
        # Rules hear of the changed snapshots through the outbox.
        await services.outbox.dispatch_pending()
        return 0


@app.command()
def rebuild(
    vendor: str | None = typer.Option(None, "--vendor", help="A vendor's slug; default: all."),
) -> None:
    """Recompute every partner's daily facts from sales, reversals, earnings, claims and
    deals, then its snapshots (every day that had one, and today)."""

    raise typer.Exit(asyncio.run(_rebuild(load_settings(), vendor)))
