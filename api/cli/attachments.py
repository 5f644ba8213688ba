"""`channelboard attachments sweep`: remove the proof files that no attachment names (left
by a process killed between writing a file and committing its row). The dispatcher does
it once a day; with local storage on several hosts, run it on each host too."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import typer
from rich.console import Console

from api.cli.settings import load_settings

app = typer.Typer(help="Uploaded proof files.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


@app.command()
def sweep(
    older_than_minutes: int = typer.Option(
        60,
        "--older-than-minutes",
        # Not less: an upload's transaction may still be open (waiting for a write lock).
        min=15,
        help="Only files written at least this long ago (15 minutes at least).",
    ),
) -> None:
    """Remove stored files that no attachment names and that are older than the limit."""
    from api.composition import build_storage  # noqa: PLC0415
    from deal_registration.attachments import sweep_orphans  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415

    settings = load_settings()

    async def run() -> int:
        db = Database(settings.database_url, waits=settings.database_waits)
        try:
            return await sweep_orphans(
                db, build_storage(settings), grace=timedelta(minutes=older_than_minutes)
            )
        finally:
            await db.dispose()

    removed = asyncio.run(run())
    console.print(f"removed {removed} file(s) that no attachment names")
