"""`channelboard leaderboards ...` and `channelboard simulate`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

import typer
from rich.console import Console
from rich.progress import Progress, TaskID
from sqlmodel import col, select

from api.cli.redis_loss import quiet_redis_tracebacks, stopping_when_redis_is_lost
from api.cli.settings import load_settings, operator
from api.cli.wiring import wiring
from api.settings import Settings
from infra.clock import SystemClock
from leaderboards.models import Contest, ContestStatus

app = typer.Typer(help="Contest leaderboards: rebuild standings from the SQL ledger.")
console = Console(stderr=True, soft_wrap=True)


async def _rebuild(settings: Settings, contest: str | None) -> int:
    return await stopping_when_redis_is_lost(
        _rebuild_contests(settings, contest), settings, console,
        lambda: "a board is swapped in whole or not at all: those not reported rebuilt above "
        "are as they were; run the command again once Redis answers",
    )  # fmt: skip


async def _rebuild_contests(settings: Settings, contest: str | None) -> int:
    from leaderboards.rebuild import drop_untagged_keys, rebuild  # noqa: PLC0415

    async with wiring(settings) as services:
        async with services.db.session() as session:
            stmt = select(Contest).where(Contest.status == ContestStatus.SCHEDULED)
            if contest:
                try:
                    stmt = select(Contest).where(Contest.id == uuid.UUID(contest))
                except ValueError:
                    stmt = select(Contest).where(col(Contest.name) == contest)
            contests = list(await session.exec(stmt))
        if not contests:
            console.print(f"[red]no such contest: {contest}[/red]" if contest else "no contests")
            return 1 if contest else 0
        with Progress(console=console) as progress:
            for c in contests:
                task = progress.add_task(c.name, total=None)

                def step(done: int, total: int, task: TaskID = task) -> None:
                    progress.update(task, completed=done, total=max(total, 1))

                replayed = await rebuild(
                    services.db, services.leaderboards.boards, SystemClock(), c.id, progress=step
                )
                progress.update(task, completed=1, total=1)
                version = await services.leaderboards.boards.version(c.id)
                await services.leaderboards.notify(c.id, version)
                console.print(f"{c.name}: {replayed} credits replayed (version {version})")
        if not contest:  # the whole deployment: also what an older key layout left behind
            dropped = await drop_untagged_keys(services.leaderboards.boards)
            if dropped:
                console.print(f"{dropped} keys of the layout before hash tags deleted")
        return 0


@app.command()
def rebuild(
    contest: str | None = typer.Argument(None, help="Contest id or name; default: all live."),
) -> None:
    """Rebuild standings in Redis from the SQL credit ledger (after a flush or failover,
    or an upgrade that renamed the keys: then the old keys are deleted too)."""

    raise typer.Exit(asyncio.run(_rebuild(load_settings(), contest)))


async def _simulate(settings: Settings, rate: float, count: int | None) -> int:
    from deal_registration.sales.simulate import NoDemoData, Simulator  # noqa: PLC0415
    from infra.outages import Outage, waiting_out  # noqa: PLC0415

    # One line per import would drown the progress lines.
    logging.getLogger("deal_registration.sales.serials").setLevel(logging.WARNING)
    quiet_redis_tracebacks()
    # A restart of the database or of Redis is waited out, said once each way, and so is a
    # transaction the database ended for contention: a step that met either runs again (the
    # simulator carries on with a claim it made; dispatching again applies what is still
    # pending).
    outage = Outage(lambda line: console.print(f"[yellow]{line}[/yellow]"))
    async with wiring(settings) as services:
        simulator = Simulator(services.db, services.clock, services.storage)
        try:
            await waiting_out(simulator.load, outage)
        except NoDemoData as exc:
            console.print(f"[red]{exc}[/red]")
            return 1
        console.print(
            f"approving about {rate:g} demo sales per second as sale claims of "
            f"{', '.join(simulator.partner_names)} (Ctrl-C stops)"
        )
        every = max(int(rate), 1)
        done = 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        while count is None or done < count:
            sale = await waiting_out(simulator.one, outage)
            # This process dispatches its own events (to every handler the app registers),
            # or a running server's dispatcher does, whichever holds the outbox lease.
            await waiting_out(services.outbox.dispatch_pending, outage)
            done += 1
            if done % every == 0 or done == count:
                console.print(f"{done} sales approved (last: {sale.describe()})")
            delay = started + done / rate - loop.time()
            if delay < -1:  # far behind (an outage waited out): on at the rate, no burst
                started, delay = started - delay, 0
            if delay > 0 and (count is None or done < count):
                await asyncio.sleep(delay)
        return 0


def simulate(
    rate: float = typer.Option(2.0, "--rate", min=0.1, max=1000, help="Sales per second."),
    count: int | None = typer.Option(None, "--count", min=1, help="Stop after this many."),
) -> None:
    """Approve a stream of realistic demo sales (real sale claims by the demo partners'
    users, on freshly shipped serials) so the demo leaderboards and earnings move."""

    code = 0
    with contextlib.suppress(KeyboardInterrupt):
        code = asyncio.run(_simulate(load_settings(), rate, count))
    raise typer.Exit(code)


async def _display_key(
    settings: Settings, slug: str, contests: list[str], label: str, base_url: str
) -> int:
    from infra.db import Database  # noqa: PLC0415
    from infra.errors import DomainError, DomainErrors  # noqa: PLC0415
    from leaderboards.display_keys import create_display_key  # noqa: PLC0415
    from partners.models import Vendor  # noqa: PLC0415
    from partners.roles import Principal, Role  # noqa: PLC0415

    db = Database(settings.database_url, waits=settings.database_waits)
    try:
        async with db.transaction() as session:
            vendor = (await session.exec(select(Vendor).where(Vendor.slug == slug))).first()
            if vendor is None:
                console.print(f"[red]no vendor with slug {slug!r}[/red]")
                return 2
            stmt = select(Contest).where(
                Contest.vendor_id == vendor.id, Contest.status == ContestStatus.SCHEDULED
            )
            found = list(await session.exec(stmt.order_by(col(Contest.created_at))))
            chosen = [
                c for c in found if not contests or str(c.id) in contests or c.name in contests
            ]
            if not chosen:
                console.print("[red]no published contest to show[/red]")
                return 1
            admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN, operator=operator())
            try:
                issued = await create_display_key(
                    session, admin, SystemClock(), label=label, contest_ids=[c.id for c in chosen]
                )
            except (DomainError, DomainErrors) as exc:
                errors = exc.errors if isinstance(exc, DomainErrors) else [exc]
                for error in errors:
                    console.print(f"[red]{error.code.value}:[/red] {error.message}")
                return 1
        console.print(f"display key {label!r} for {', '.join(c.name for c in chosen)}")
        print(f"{base_url.rstrip('/')}/tv#key={issued.secret}")  # noqa: T201 - the output
        return 0
    finally:
        await db.dispose()


@app.command("display-key")
def display_key(
    contests: list[str] = typer.Argument(  # noqa: B008 - typer's way
        None, help="Contest ids or names; default: every published contest of the vendor."
    ),
    vendor: str = typer.Option("northwind", "--vendor", help="The vendor's slug."),
    label: str = typer.Option("Office TV", "--label", help="Where the screen is."),
    base_url: str = typer.Option(
        "http://127.0.0.1:8000", "--base-url", help="Where the API is served."
    ),
) -> None:
    """Create a display key for an office screen (as the vendor's admin, audited as the
    operator) and print the TV page's URL with it: open it on the screen, full screen. The
    key is shown this once; revoke it with `displayKeyRevoke`."""
    raise typer.Exit(
        asyncio.run(_display_key(load_settings(), vendor, contests or [], label, base_url))
    )
