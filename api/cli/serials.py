"""`channelboard serials import FILE.csv`: load shipped serials into a vendor's registry."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import BinaryIO

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlmodel import select

from api.cli.settings import load_settings, operator
from api.cli.wiring import announcing
from api.settings import Settings
from deal_registration.sales import serials
from infra.clock import SystemClock
from infra.db import Database
from infra.errors import DomainError
from partners.models import Vendor
from partners.roles import Principal, Role

app = typer.Typer(help="The serial registry (shipped serial numbers).", no_args_is_help=True)
console = Console(stderr=True)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    vendor: str = typer.Option("northwind", "--vendor", help="The vendor's slug."),
    good_rows_only: bool = typer.Option(
        False, "--good-rows-only", help="Import the good rows and report the bad ones."
    ),
) -> None:
    """Import FILE.csv (UTF-8; header serial,sku,shipped_to,region,shipped_at[,status]).

    Re-importing a file changes nothing; changed rows are updated; status RETURNED or
    VOIDED marks serials. All or nothing unless --good-rows-only."""

    settings = load_settings()
    with file.open("rb") as source:
        code = asyncio.run(
            _import(settings, source, file.name, file.stat().st_size, vendor, good_rows_only)
        )  # fmt: skip
    raise typer.Exit(code)


async def _import(
    settings: Settings, source: BinaryIO, name: str, size: int, slug: str, good_rows_only: bool
) -> int:
    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            found = (await session.exec(select(Vendor).where(Vendor.slug == slug))).first()
        if found is None:
            console.print(f"[red]no vendor with slug {slug!r}[/red]")
            return 2
        principal = Principal(vendor_id=found.id, role=Role.VENDOR_ADMIN, operator=operator())
        progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
            TimeRemainingColumn(), console=console,
        )  # fmt: skip
        try:
            with progress:
                task = progress.add_task(f"reading {name}", total=size)
                async with announcing(settings, db), db.transaction() as session:
                    report = await serials.import_serials(
                        session, principal, SystemClock(), source=source, filename=name,
                        good_rows_only=good_rows_only,
                        progress=lambda n: progress.advance(task, n),
                    )  # fmt: skip
                    progress.update(task, description="committed")
        except serials.ImportRejected as refused:
            _summary(refused.report)
            console.print(f"[red]{refused.message}[/red]")
            return 1
        except DomainError as error:
            console.print(f"[red]{error.code.value}:[/red] {error.message}")
            return 1
        _summary(report)
        return 0
    finally:
        await db.dispose()


def _summary(report: serials.ImportReport) -> None:
    table = Table(title="Serial import" + ("" if report.applied else " (nothing written)"))
    for column in ("rows", "inserted", "updated", "unchanged", "rejected"):
        table.add_column(column, justify="right")
    table.add_row(
        *(f"{v:,}" for v in (report.rows, report.inserted, report.updated, report.unchanged,
                             report.rejected))
    )  # fmt: skip
    Console().print(table)
    if report.errors:
        errors = Table(title="Rejected rows")
        errors.add_column("line", justify="right")
        errors.add_column("code")
        errors.add_column("reason")
        for error in report.errors[:50]:
            errors.add_row(str(error.line), error.code.value, error.message)
        Console().print(errors)
        if report.rejected > 50:
            console.print(f"… and {report.rejected - 50:,} more.")
