"""`channelboard audit export`: the audit log as CSV on standard output (the operator's
view of a vendor's administrative changes; GraphQL's `auditLogExport` is the vendor's)."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

import typer
from rich.console import Console

from api.cli.settings import load_settings

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
) -> None:
    """Write the vendor's audit entries (oldest first) as CSV to standard output."""
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
                sys.stdout.write(to_csv([]))  # the header
                entries = vendor_entries(vendors[0].id, since=start)
                async for page in export_pages(session, entries):
                    sys.stdout.write(to_csv(page, header=False))
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
