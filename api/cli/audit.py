"""`channelboard audit export`: the audit log as CSV on standard output, or to a file
written whole (``--out``: ``api.cli.whole_files``), the operator's view of a vendor's
administrative changes; GraphQL's `auditLogExport` is the vendor's."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console

from api.cli.settings import load_settings
from api.cli.whole_files import whole_file

app = typer.Typer(help="The audit log of administrative changes.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


def _instant(value: str | None) -> datetime | None:
    from schema.instants import InstantError, instant_of  # noqa: PLC0415

    if value is None:
        return None
    try:
        return instant_of(value)
    except InstantError as exc:
        console.print(f"[red]--since is not an ISO 8601 date or time:[/red] {value!r}")
        raise typer.Exit(2) from exc


@app.command()
def export(
    vendor: str | None = typer.Option(
        None, "--vendor", help="The vendor's slug (required when there is more than one)."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Entries at or after this ISO 8601 date/time (UTC if no offset)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Write FILE, only ever whole (a partial file beside it, renamed over it once "
        "complete), rather than standard output (which a command killed half-way leaves cut "
        "short, with nothing to tell).",
    ),
) -> None:
    """Write the vendor's audit entries (oldest first) as CSV to standard output, or to
    FILE (--out), only ever whole."""
    from sqlmodel import select  # noqa: PLC0415

    from infra.db import Database  # noqa: PLC0415
    from partners.audit_log import export_pages, to_csv, vendor_entries  # noqa: PLC0415
    from partners.models import Vendor  # noqa: PLC0415

    settings = load_settings()
    start = _instant(since)

    async def run() -> bool:
        db = Database(settings.database_url, waits=settings.database_waits)
        try:
            async with db.session() as session:
                stmt = select(Vendor)
                if vendor is not None:
                    stmt = stmt.where(Vendor.slug == vendor)
                vendors = list(await session.exec(stmt.limit(2)))
                if len(vendors) != 1:
                    return False
                with (
                    whole_file(out) if out is not None else contextlib.nullcontext(sys.stdout)
                ) as stream:
                    stream.write(to_csv([]))  # the header
                    entries = vendor_entries(vendors[0].id, since=start)
                    async for page in export_pages(session, entries):
                        stream.write(to_csv(page, header=False))
                return True
        finally:
            await db.dispose()

    if not asyncio.run(run()):
        console.print(
            f"[red]no vendor {vendor!r}[/red]"
            if vendor is not None
            else "[red]more than one vendor (or none): name one with --vendor SLUG[/red]"
        )
        raise typer.Exit(1)
