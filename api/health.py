"""/healthz (the process is up) and /readyz (it can serve: database, Redis, schema, live
feeds subscribed; and, for the operator, the outbox backlog)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.migrations import current_revision, head_revision
from infra.outbox import backlog
from notifications import sender
from schema.context import Services


async def healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readiness(services: Services) -> tuple[bool, dict[str, str]]:
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            async with services.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                revision = await conn.run_sync(current_revision)
        head = head_revision()
        checks["database"] = "ok"
        checks["migrations"] = (
            "ok"
            if revision == head
            else f"database at {revision}, code expects {head}: run 'channelboard migrate'"
        )
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        async with asyncio.timeout(2):
            await services.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    # Live feeds: whether this process's Hub hears the notices its websocket subscribers
    # are pushed from (its subscriptions confirmed by Redis), from what the Hub's reader
    # already knows. Redis answering a PING is not enough: after an outage or a failover
    # the Hub may still be resubscribing, or failing to. No grace period for a momentary
    # reconnection: while it lasts, notices are missed here; a balancer's own threshold of
    # consecutive failures absorbs a blip (docs/deploy.md).
    problem = services.hub.live_problem()
    checks["live"] = "ok" if problem is None else problem
    return all(v == "ok" for v in checks.values()), checks


async def outbox_backlog(services: Services) -> dict[str, float | int] | None:
    """Events recorded but not yet dispatched (``pending``, waiting retries included), the
    age of the oldest, and ``deadLetters`` (events whose handlers failed every attempt, set
    aside until an operator runs ``channelboard outbox retry|discard``). A backlog that only
    grows means no dispatcher is running (``CHANNELBOARD_DISPATCH=external`` without a
    ``channelboard dispatch`` process) or Redis is down. Not part of readiness: this
    process serves requests either way. None when it cannot be read in time."""
    try:
        async with asyncio.timeout(2), services.db.session() as session:
            return await backlog(session, services.clock.now())
    except Exception:  # noqa: BLE001 - the database check reports why
        return None


async def mail_backlog(services: Services) -> dict[str, int] | None:
    """Notification e-mails due and not sent yet, and those set aside after their last
    attempt (``notifications.sender``). None when it cannot be read in time."""
    try:
        async with asyncio.timeout(2), services.db.session() as session:
            return await sender.mail_backlog(session, services.clock.now())
    except Exception:  # noqa: BLE001 - the database check reports why
        return None


async def readyz(request: Request) -> JSONResponse:
    services = request.app.state.services
    ok, checks = await readiness(services)
    # The backlogs whenever the database answers: during a Redis outage (or while the Hub
    # resubscribes) is when an operator most needs to see what waits.
    readable = checks.get("database") == "ok"
    return JSONResponse(
        {
            "status": "ready" if ok else "unavailable",
            "checks": checks,
            "outbox": await outbox_backlog(services) if readable else None,
            "mail": await mail_backlog(services) if readable else None,
        },
        status_code=200 if ok else 503,
    )
