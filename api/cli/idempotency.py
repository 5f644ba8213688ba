"""`channelboard idempotency prune`: delete the idempotency keys past their retention
(``CHANNELBOARD_IDEMPOTENCY_KEY_RETENTION_HOURS``). The clock job ``idempotency-prune`` does
it every 15 minutes wherever the clock jobs run; the command is for a first prune after an
upgrade (a table that grew for months) or a deployment that runs no clock jobs."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from api.cli.settings import load_settings

app = typer.Typer(help="Idempotency keys.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


@app.command()
def prune(
    batch: int = typer.Option(
        1_000, "--batch", min=1, max=100_000, help="Keys deleted per transaction."
    ),
) -> None:
    """Delete the keys older than the retention, oldest first, in short transactions."""
    from infra.clock import SystemClock  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415
    from infra.idempotency import prune as prune_keys  # noqa: PLC0415

    settings = load_settings()

    async def run() -> int:
        db = Database(settings.database_url, waits=settings.database_waits)
        try:
            return await prune_keys(
                db, SystemClock(), retention=settings.idempotency_key_retention, batch=batch
            )
        finally:
            await db.dispose()

    removed = asyncio.run(run())
    hours = settings.idempotency_key_retention_hours
    console.print(f"removed {removed} idempotency key(s) older than {hours} hours")
