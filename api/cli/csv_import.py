"""What every `channelboard … import FILE.csv` command shares: the vendor looked up by slug,
the import run as that vendor's admin (audited as operator:<login>) in one transaction with
a progress bar over the file's bytes, and the summary table with line-numbered errors.
A run that loses a race (the API adding a partner of the same name meanwhile, a deadlock
PostgreSQL broke) is run again over the file, as a mutation's transaction is.
Exit codes: 0 imported, 1 refused (bad rows under all-or-nothing, a bad file, or a race lost
three times), 2 no such vendor."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import BinaryIO, Protocol

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.cli.settings import load_settings, operator
from api.cli.wiring import announcing
from api.settings import Settings
from infra.db import Database
from infra.errors import DomainError
from infra.outages import first_line, lost_a_race_for_a_unique_key, rolled_back_by_the_database
from partners.models import Vendor
from partners.roles import Principal, Role

console = Console(stderr=True)
SHOWN_ERRORS = 50
# As a mutation's transaction (schema.mutations.RUNS): the first run and two more.
RUNS = 3


def _worth_running_again(error: BaseException) -> bool:
    """A run PostgreSQL rolled back (a deadlock, a serialization conflict), or one that lost
    a race for a unique key (a partner of the same name added by the API meanwhile)."""
    return rolled_back_by_the_database(error) or lost_a_race_for_a_unique_key(error)


class RowError(Protocol):
    @property
    def line(self) -> int: ...
    @property
    def code(self) -> Enum: ...
    @property
    def message(self) -> str: ...


class Report(Protocol):
    @property
    def applied(self) -> bool: ...
    @property
    def rows(self) -> int: ...
    @property
    def inserted(self) -> int: ...
    @property
    def updated(self) -> int: ...
    @property
    def unchanged(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def errors(self) -> Sequence[RowError]: ...


# (session, principal, source, file name, progress callback) -> the import's report
Importer = Callable[
    [AsyncSession, Principal, BinaryIO, str, Callable[[int], None]], Awaitable[Report]
]


def run(file: Path, *, vendor: str, title: str, importer: Importer) -> None:
    """Import ``file`` for the vendor ``vendor`` and exit with the command's code. A refusal
    of the whole file (bad rows under all-or-nothing) is a DomainError carrying ``report``."""
    settings = load_settings()
    with file.open("rb") as source:
        size = file.stat().st_size
        code = asyncio.run(_run(settings, source, file.name, size, vendor, title, importer))
    raise typer.Exit(code)


async def _run(
    settings: Settings, source: BinaryIO, name: str, size: int, slug: str, title: str,
    importer: Importer,
) -> int:  # fmt: skip
    db = Database(settings.database_url, waits=settings.database_waits)
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
                run = 1
                while True:
                    try:
                        async with announcing(settings, db), db.transaction() as session:
                            report = await importer(
                                session, principal, source, name,
                                lambda n: progress.advance(task, n),
                            )  # fmt: skip
                            progress.update(task, description="committed")
                        break
                    except Exception as exc:
                        if not _worth_running_again(exc):
                            raise
                        # Nothing of the run stayed: read the file again, against what the
                        # other writer committed (a row it added is now matched, not added).
                        if run >= RUNS or not source.seekable():
                            console.print(
                                f"[red]{first_line(exc)}[/red]\nAnother change to the same "
                                "partners committed while the file was imported; nothing was "
                                "imported. Run the import again."
                            )
                            return 1
                        run += 1
                        source.seek(0)
                        progress.reset(task, description=f"reading {name} again")
        except DomainError as error:
            refused: Report | None = getattr(error, "report", None)
            if refused is not None:
                _summary(title, refused)
                console.print(f"[red]{error.message}[/red]")
            else:
                console.print(f"[red]{error.code.value}:[/red] {error.message}")
            return 1
        _summary(title, report)
        return 0
    finally:
        await db.dispose()


def _summary(title: str, report: Report) -> None:
    table = Table(title=title + ("" if report.applied else " (nothing written)"))
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
        for error in report.errors[:SHOWN_ERRORS]:
            errors.add_row(str(error.line), error.code.value, error.message)
        Console().print(errors)
        if report.rejected > SHOWN_ERRORS:
            console.print(f"… and {report.rejected - SHOWN_ERRORS:,} more.")
