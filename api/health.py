"""/healthz (the process is up) and /readyz (it can serve: database, Redis, schema)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.migrations import current_revision, head_revision
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
    return all(v == "ok" for v in checks.values()), checks


async def readyz(request: Request) -> JSONResponse:
    ok, checks = await readiness(request.app.state.services)
    return JSONResponse(
        {"status": "ready" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
    )
