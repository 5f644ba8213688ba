"""`channelboard outbox ...`: look at the outbox's stuck events and act on them.

An event whose handler failed ``CHANNELBOARD_OUTBOX_MAX_ATTEMPTS`` times is dead-lettered:
set aside, while later events (of other aggregates) go on. ``retry`` re-queues it once the
cause is fixed; ``discard`` sets it aside for good. Both record who and when in the row."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import typer
from rich.console import Console
from rich.table import Table

from api.cli.settings import load_settings, operator
from api.cli.wiring import running_redis_url
from api.settings import Settings
from infra.outbox import EventState

app = typer.Typer(help="Outbox events that are stuck: list, retry, discard.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


def _event_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        console.print(f"[red]not an event id:[/red] {value!r}")
        raise typer.Exit(2) from exc


@app.command("list")
def list_events(
    state: list[EventState] = typer.Option(
        [EventState.DEAD, EventState.RETRYING], "--state", case_sensitive=False,
        help="Which events (repeat for several).",
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
) -> None:  # fmt: skip
    """Events in STATE (default: dead and retrying), oldest first, with their last error."""
    from sqlmodel import col, select  # noqa: PLC0415

    from infra.db import Database  # noqa: PLC0415
    from infra.outbox import OutboxEvent, in_states, state_of  # noqa: PLC0415

    settings = load_settings()

    async def run() -> list[OutboxEvent]:
        db = Database(settings.database_url, waits=settings.database_waits)
        try:
            async with db.session() as session:
                rows = await session.exec(
                    select(OutboxEvent)
                    .where(in_states(state))
                    .order_by(col(OutboxEvent.id))
                    .limit(limit)
                )
                return list(rows)
        finally:
            await db.dispose()

    events = asyncio.run(run())
    table = Table(title=f"outbox events: {', '.join(s.value for s in state)}")
    for name in ("id", "type", "vendor", "state", "attempts", "next attempt", "last error"):
        table.add_column(name, overflow="fold")
    for e in events:
        table.add_row(
            str(e.id), e.type, str(e.vendor_id), state_of(e).value, str(e.attempts),
            e.next_attempt_at.isoformat(timespec="seconds") if e.next_attempt_at else "-",
            f"{e.last_error_type}: {e.last_error}" if e.last_error_type else "-",
        )  # fmt: skip
    Console(width=240).print(table)


def _act(
    event_id: str,
    by: str | None,
    action: Callable[..., Awaitable[object | None]],
    done: str,
) -> None:
    from infra.clock import SystemClock  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415

    settings = load_settings()
    parsed = _event_id(event_id)

    async def run() -> object | None:
        db = Database(settings.database_url, waits=settings.database_waits)
        try:
            result = await action(db, SystemClock(), parsed, by=by or operator())
        finally:
            await db.dispose()
        if result is not None:
            await _wake_dispatcher(settings)
        return result

    if asyncio.run(run()) is None:
        console.print(f"[red]no undispatched event {parsed}[/red] (dispatched or discarded?)")
        raise typer.Exit(1)
    console.print(f"event {parsed} {done}")


async def _wake_dispatcher(settings: Settings) -> None:
    """Wake a `channelboard dispatch` process now rather than at its next poll (API
    processes that dispatch inline poll every second). Best effort: no Redis, no wake."""
    from infra.outbox import WAKE_CHANNEL  # noqa: PLC0415
    from infra.pubsub import Hub  # noqa: PLC0415
    from infra.redis import Keys, connect  # noqa: PLC0415

    url = running_redis_url(settings)
    if url is None:
        return
    redis = connect(url, cluster=settings.redis_cluster)
    hub = Hub(redis, Keys(settings.redis_namespace))
    try:
        await hub.publish(hub.channel(WAKE_CHANNEL), b"")
    except Exception:  # noqa: BLE001 - the dispatcher's poll catches it anyway
        console.print("[yellow]could not wake the dispatcher; it picks this up at its poll")
    finally:
        await hub.close()
        await redis.aclose()


BY = typer.Option(None, "--by", help="Who acts (recorded in the row; default: login name).")


@app.command()
def retry(event_id: str = typer.Argument(..., metavar="ID"), by: str | None = BY) -> None:
    """Re-queue an event (dead or waiting): it is due now, with a fresh set of attempts.
    A running dispatcher is woken (or picks it up at its next poll)."""
    from infra.outbox import retry_event  # noqa: PLC0415

    _act(event_id, by, retry_event, "re-queued")


@app.command()
def discard(event_id: str = typer.Argument(..., metavar="ID"), by: str | None = BY) -> None:
    """Set an event aside for good: no handler runs for it; later events of its aggregate
    go ahead."""
    from infra.outbox import discard_event  # noqa: PLC0415

    _act(event_id, by, discard_event, "discarded")
