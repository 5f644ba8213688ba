"""`channelboard partners import FILE.csv`: create or update a vendor's partners from a CSV
file, with the serial import's conventions (progress bar, summary, line-numbered errors,
all-or-nothing unless --good-rows-only, idempotent re-import)."""

from __future__ import annotations

from pathlib import Path

import typer

from api.cli import csv_import
from infra.clock import SystemClock
from partners import imports

app = typer.Typer(help="Partner organisations.", no_args_is_help=True)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    vendor: str = typer.Option("northwind", "--vendor", help="The vendor's slug."),
    good_rows_only: bool = typer.Option(
        False, "--good-rows-only", help="Import the good rows and report the bad ones."
    ),
) -> None:
    """Import FILE.csv (UTF-8; header name,region and any of external_ref,legal_name,country,
    tags,contact_name,contact_email,contact_phone; tags separated by ';').
    Rows match existing partners by external_ref, else by name; re-importing a file changes
    nothing. All or nothing unless --good-rows-only. Audited as operator:<login>."""
    csv_import.run(
        file, vendor=vendor, title="Partner import",
        importer=lambda session, principal, source, name, progress: imports.import_partners(
            session, principal, SystemClock(), source=source, filename=name,
            good_rows_only=good_rows_only, progress=progress,
        ),
    )  # fmt: skip
