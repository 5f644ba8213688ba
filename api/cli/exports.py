"""`channelboard exports write KIND --vendor SLUG --out FILE`: a finance export written to a
file page by page (the same registry, columns and CSV-injection escaping as
`GET /exports/{kind}.csv`), as the vendor's admin (the operator's view of every row).

FILE is only ever a whole export: the pages go to a partial file beside it
(``.FILE.<random>.part``), which is synced and then renamed over FILE. A command killed on
the way leaves FILE as it was (absent, or the last whole export) and a ``.part`` file that
no one reads (remove it at will); a failure it sees removes the partial file itself."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TextIO

import typer
from rich.console import Console

from api.cli.settings import load_settings, operator

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


@contextlib.contextmanager
def _whole_file(out: Path) -> Iterator[TextIO]:
    """A text file that becomes ``out`` only once the block ends without an error (written,
    synced, renamed into place, the rename synced): ``out`` is never seen part-written. A
    pipe or a device (``/dev/stdout``) is written as it is: it holds no file to replace. A
    symbolic link is followed (its target is replaced, the link stays); a file in a
    directory this process may not create files in is written in place, as before."""
    made: tuple[int, str] | None = None
    # Asked before resolving: /dev/stdout resolves to /proc/self/fd/1, and a pipe's to a
    # name ("pipe:[…]") that is no file, in a directory where no file can be made.
    if not out.exists() or out.is_file():
        out = out.resolve()
        directory = out.parent
        if not directory.is_dir():  # named as itself, not as the partial file's path in it
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(directory))
        with contextlib.suppress(PermissionError):
            made = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=directory)
    if made is None:
        with out.open("w", encoding="utf-8", newline="") as stream:
            yield stream
        return
    fd, name = made
    partial = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(fd, 0o666 & ~umask)  # as open() would have made it, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    handle = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


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
                with _whole_file(out) as file:
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
