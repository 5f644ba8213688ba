"""`channelboard serials import FILE.csv`: load shipped serials into a vendor's registry."""

from __future__ import annotations

from pathlib import Path

import typer

from api.cli import csv_import
from deal_registration.sales import serials
from infra.clock import SystemClock

app = typer.Typer(help="The serial registry (shipped serial numbers).", no_args_is_help=True)


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
    csv_import.run(
        file, vendor=vendor, title="Serial import",
        importer=lambda session, principal, source, name, progress: serials.import_serials(
            session, principal, SystemClock(), source=source, filename=name,
            good_rows_only=good_rows_only, progress=progress,
        ),
    )  # fmt: skip
