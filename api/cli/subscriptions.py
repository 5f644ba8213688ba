"""`channelboard subscriptions import FILE.csv`: the billing system's renewals, expansions,
contractions and cancellations (subscriptions/imports.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from api.cli import csv_import
from infra.clock import SystemClock
from subscriptions import imports

app = typer.Typer(help="Customer subscriptions and renewals.", no_args_is_help=True)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    vendor: str = typer.Option("northwind", "--vendor", help="The vendor's slug."),
    good_rows_only: bool = typer.Option(
        False, "--good-rows-only", help="Import the good rows and report the bad ones."
    ),
) -> None:
    """Import FILE.csv (UTF-8; header external_id,subscription,kind,effective_at[,amount]
    [,currency][,term_months]; kind RENEWED, EXPANDED, CONTRACTED or CANCELLED). Rows apply
    in file order; a row whose external_id was applied before changes nothing. All or
    nothing unless --good-rows-only."""
    csv_import.run(
        file, vendor=vendor, title="Subscription import",
        importer=lambda session, principal, source, name, progress: imports.import_changes(
            session, principal, SystemClock(), source=source, filename=name,
            good_rows_only=good_rows_only, progress=progress,
        ),
    )  # fmt: skip
