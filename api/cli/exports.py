"""`channelboard exports write KIND --vendor SLUG --out FILE`: a finance export written to a
file page by page (the same registry, columns and CSV-injection escaping as
`GET /exports/{kind}.csv`), as the vendor's admin (the operator's view of every row).

FILE is only ever a whole export: the pages go to a partial file beside it
(``.FILE.<random>.part``), which is synced and then renamed over FILE. A command killed on
the way leaves FILE as it was (absent, or the last whole export) and a ``.part`` file that
no one reads (remove it at will); a failure it sees removes the partial file itself."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console

from api.cli.settings import load_settings, operator
from api.cli.whole_files import whole_file

app = typer.Typer(help="CSV exports for finance reconciliation.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


def _instant(value: str | None, name: str) -> datetime | None:
    from schema.instants import InstantError, instant_of  # noqa: PLC0415

    if value is None:
        return None
    try:
        return instant_of(value)
    except InstantError as exc:
        console.print(f"[red]{name} is not an ISO 8601 date or time:[/red] {value!r}")
        raise typer.Exit(2) from exc


@app.command()
def kinds() -> None:
    """List the export kinds and their columns."""
    from forecasts.exports import KINDS  # noqa: PLC0415

    for name, kind in KINDS.items():
        typer.echo(f"{name}: {kind.description}\n  {', '.join(kind.columns)}")


@app.command()
def write(
    kind: str = typer.Argument(..., help="commissions, payouts, forecasts or audit."),
    vendor: str = typer.Option(..., "--vendor", help="The vendor's slug."),
    out: Path = typer.Option(..., "--out", help="The CSV file to write."),
    since: str | None = typer.Option(None, "--since", help="ISO 8601 (UTC if no offset)."),
    until: str | None = typer.Option(None, "--until", help="Exclusive; ISO 8601."),
) -> None:
    """Write one export of the vendor to a file, a page at a time."""
    from sqlmodel import select  # noqa: PLC0415

    from forecasts.exports import check_bounds, kind_of, stream  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415
    from infra.errors import DomainError  # noqa: PLC0415
    from partners.models import Vendor  # noqa: PLC0415
    from partners.roles import Principal, Role  # noqa: PLC0415

    found_kind = kind_of(kind)
    if found_kind is None:
        console.print(f"[red]no export kind {kind!r}[/red] (see `channelboard exports kinds`)")
        raise typer.Exit(2)
    start, end = _instant(since, "--since"), _instant(until, "--until")
    try:
        check_bounds(start, end)
    except DomainError as exc:
        console.print("[red]--since must be before --until[/red] (which is exclusive)")
        raise typer.Exit(2) from exc
    settings = load_settings()

    async def run() -> int | None:
        db = Database(settings.database_url, waits=settings.database_waits)
        try:
            async with db.read_session() as session:
                found = (await session.exec(select(Vendor).where(Vendor.slug == vendor))).first()
                if found is None:
                    return None
                principal = Principal(
                    vendor_id=found.id, role=Role.VENDOR_ADMIN, operator=operator()
                )
                lines = -1  # the header
                with whole_file(out) as file:
                    async for chunk in stream(
                        session, principal, found_kind, since=start, until=end
                    ):
                        file.write(chunk)
                        lines += chunk.count("\r\n")
                return lines
        finally:
            await db.dispose()

    rows = asyncio.run(run())
    if rows is None:
        console.print(f"[red]no vendor with slug {vendor!r}[/red]")
        raise typer.Exit(1)
    console.print(f"wrote {rows:,} rows to {out}")
