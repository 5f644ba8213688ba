"""`channelboard deals ...`: deal registration chores for cron or an operator."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from api.cli.settings import load_settings
from api.cli.wiring import announcing

app = typer.Typer(help="Deal registration chores.", no_args_is_help=True)
console = Console(stderr=True)


@app.command()
def expire() -> None:
    """Write down expired protections (APPROVED -> EXPIRED, recorded, notified). Readers
    already treat them as expired at the instant; this makes history and live subscribers
    catch up. Safe to run at any time, from cron, on any host."""
    from deal_registration.registrations import expiry  # noqa: PLC0415
    from infra.clock import SystemClock  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415

    settings = load_settings()

    async def run() -> int:
        db = Database(settings.database_url, waits=settings.database_waits)
        try:
            async with announcing(settings, db), db.transaction() as session:
                return await expiry.expire_due(session, SystemClock())
        finally:
            await db.dispose()

    moved = asyncio.run(run())
    console.print(f"{moved} registration(s) expired")
