"""`channelboard vendors …`: the operator's tenant administration (create, list, suspend,
reactivate). Bad input exits 1 with the error's code and message on stderr; nothing is
written then."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel.ext.asyncio.session import AsyncSession

from api.cli.settings import load_settings
from api.cli.wiring import announcing
from api.settings import Settings
from infra.clock import Clock, SystemClock
from infra.db import Database
from infra.errors import DomainError
from partners import vendors
from partners.invitations import Operator

app = typer.Typer(help="Vendors (tenants): the operator's commands.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def operator() -> Operator:
    """Who runs the command, as the audit log names it (operator:<login>)."""
    try:
        login = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        login = "unknown"
    return Operator(login)


async def _write(
    settings: Settings, action: Callable[[AsyncSession, Clock], Awaitable[T]]
) -> T | DomainError:
    db = Database(settings.database_url, waits=settings.database_waits)
    try:
        async with announcing(settings, db), db.transaction() as session:
            return await action(session, SystemClock())
    except DomainError as error:
        return error
    finally:
        await db.dispose()


def _fail(error: DomainError) -> typer.Exit:
    console.print(f"[red]{error.code.value}:[/red] {error.message}")
    return typer.Exit(1)


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="The vendor's display name."),
    slug: str = typer.Option(..., "--slug", help="Lower-case letters, digits and hyphens."),
    admin_email: str = typer.Option(..., "--admin-email", help="Its first VENDOR_ADMIN."),
) -> None:
    """Create a vendor and its first VENDOR_ADMIN. Run again with the same arguments while
    that admin has not accepted (the token was lost), it prints a new token for the same
    invitation (the earlier one stops working)."""
    settings = load_settings()
    result = asyncio.run(_write(settings, lambda session, clock: vendors.create_vendor(
        session, clock, name=name, slug=slug, admin_email=admin_email, operator=operator()
    )))  # fmt: skip
    if isinstance(result, DomainError):
        raise _fail(result)
    vendor, invitation = result.vendor, result.invitation.invitation
    title = (
        f"Vendor {vendor.slug!r} was already created by an earlier run, its first admin not "
        "in yet: a new invitation token (the earlier one no longer works)"
        if result.existed
        else f"Vendor {vendor.slug!r} created: invitation for its first admin"
    )
    table = Table(title=title)
    for column in ("vendor", "email", "role", "invitation id", "expires at"):
        table.add_column(column)
    table.add_row(
        f"{vendor.name} ({vendor.slug})", invitation.email, invitation.role.value,
        str(invitation.id), invitation.expires_at.isoformat(timespec="seconds"),
    )  # fmt: skip
    Console(width=200).print(table)
    console.print(
        "The admin accepts with invitationAccept(token) while signed in with an "
        "identity-provider token (locally: channelboard token --subject SUB --email EMAIL). "
        "The one-time invitation token (shown only now):"
    )
    print(result.invitation.token)  # noqa: T201 - the command's output


@app.command("list")
def list_() -> None:
    """List vendors: slug, name, status, users, partners."""
    settings = load_settings()
    result = asyncio.run(_write(settings, lambda session, _clock: vendors.list_vendors(session)))
    assert not isinstance(result, DomainError)
    table = Table(title="Vendors")
    for column in ("slug", "name", "status"):
        table.add_column(column)
    table.add_column("users", justify="right")
    table.add_column("partners", justify="right")
    for row in result:
        table.add_row(
            row.vendor.slug, row.vendor.name, row.vendor.status.value,
            str(row.users), str(row.partners),
        )  # fmt: skip
    Console(width=200).print(table)


@app.command("suspend")
def suspend(
    slug: str = typer.Argument(..., help="The vendor's slug."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the audit log)."),
) -> None:
    """Suspend a vendor: its users and API keys are refused (VENDOR_SUSPENDED) and its open
    websockets close; its data is kept."""
    settings = load_settings()
    result = asyncio.run(_write(settings, lambda session, clock: vendors.suspend_vendor(
        session, clock, slug=slug, reason=reason, operator=operator()
    )))  # fmt: skip
    if isinstance(result, DomainError):
        raise _fail(result)
    console.print(f"suspended {result.slug!r}")


@app.command("reactivate")
def reactivate(slug: str = typer.Argument(..., help="The vendor's slug.")) -> None:
    """Reactivate a suspended vendor."""
    settings = load_settings()
    result = asyncio.run(_write(settings, lambda session, clock: vendors.reactivate_vendor(
        session, clock, slug=slug, operator=operator()
    )))  # fmt: skip
    if isinstance(result, DomainError):
        raise _fail(result)
    console.print(f"reactivated {result.slug!r}")
