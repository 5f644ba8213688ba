"""Test helpers: GraphQL over HTTP, factories, tokens, a live server for websockets."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.applications import Starlette

from api.auth import issue_token
from api.settings import Settings
from infra.clock import Clock
from partners import service
from partners.models import Partner, User, Vendor
from partners.roles import Role

_seq = itertools.count(1)


@dataclass
class GQL:
    """A GraphQL-over-HTTP client bound to the app under test."""

    client: httpx.AsyncClient
    settings: Settings
    clock: Clock

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_user: User | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        hdrs = {"content-type": "application/json", **(headers or {})}
        if as_user is not None:
            token = self.token(as_user)
        if token is not None:
            hdrs["authorization"] = f"Bearer {token}"
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await self.client.post("/graphql", json=body, headers=hdrs)

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        as_user: User | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        response = await self.post(query, variables, as_user=as_user, token=token)
        assert response.status_code == 200, response.text
        payload: dict[str, Any] = response.json()
        return payload

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, as_user: User | None = None
    ) -> dict[str, Any]:
        """The data of a request that must not fail."""
        payload = await self(query, variables, as_user=as_user)
        assert "errors" not in payload, payload
        result: dict[str, Any] = payload["data"]
        return result

    def token(self, user: User, ttl: timedelta = timedelta(hours=1)) -> str:
        return issue_token(self.settings.jwt, user, ttl=ttl, now=self.clock.now())


def error_codes(payload: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in payload.get("errors", [])]


@dataclass
class Tenant:
    vendor: Vendor
    partners: list[Partner]
    users: dict[Role | tuple[Role, int], User] = field(default_factory=dict)

    def user(self, role: Role, partner_index: int = 0) -> User:
        if role.is_partner:
            return self.users[(role, partner_index)]
        return self.users[role]


async def create_tenant(
    session: AsyncSession, clock: Clock, *, partners: int = 2, name: str | None = None
) -> Tenant:
    """A vendor with ``partners`` partner organisations, one user of each vendor role, and a
    partner admin and rep per partner; the channel manager is assigned to partner 0 only."""
    n = next(_seq)
    slug = f"v{n}-{uuid.uuid4().hex[:6]}"
    vendor = await service.create_vendor(session, clock, name=name or f"Vendor {n}", slug=slug)
    tenant = Tenant(vendor=vendor, partners=[])
    for i in range(partners):
        tenant.partners.append(
            await service.create_partner(
                session,
                clock,
                vendor_id=vendor.id,
                name=f"Partner {n}.{i}",
                region="EMEA",
                internal_notes=f"secret notes {n}.{i}",
            )  # fmt: skip
        )
    for role in (Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER, Role.FINANCE):
        tenant.users[role] = await service.create_user(
            session, clock, vendor_id=vendor.id, email=f"{role.value.lower()}@{slug}.example",
            role=role, display_name=role.value.title(),
        )  # fmt: skip
    for i, partner in enumerate(tenant.partners):
        for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP):
            tenant.users[(role, i)] = await service.create_user(
                session, clock, vendor_id=vendor.id, partner_id=partner.id,
                email=f"{role.value.lower()}{i}@{slug}.example", role=role,
                display_name=f"{role.value.title()} {i}",
            )  # fmt: skip
    if tenant.partners:
        await service.assign_manager(
            session, clock, manager=tenant.users[Role.CHANNEL_MANAGER], partner=tenant.partners[0]
        )
    return tenant


@asynccontextmanager
async def live_server(app: Starlette) -> AsyncIterator[str]:
    """Serve an already started app on a free loopback port (real uvicorn, real sockets)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning",
        ws_per_message_deflate=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


# Dates the demo tests pin the clock to: early, mid and late in months of each length, both
# sides of month boundaries (a 28-day February, a leap February, a year end), the day the
# earnings demo test was written and the day it failed.
DEMO_DATES = (
    datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
    datetime(2026, 12, 4, 2, 0, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2027, 1, 1, 0, 0, tzinfo=UTC),
    datetime(2027, 1, 10, 12, 0, tzinfo=UTC),
    datetime(2027, 2, 28, 23, 59, 59, tzinfo=UTC),
    datetime(2027, 3, 1, 0, 0, tzinfo=UTC),
    datetime(2027, 3, 5, 12, 0, tzinfo=UTC),
    datetime(2027, 3, 15, 12, 0, tzinfo=UTC),
    datetime(2027, 4, 30, 18, 0, tzinfo=UTC),
    datetime(2028, 2, 29, 12, 0, tzinfo=UTC),
)


async def eventually(check: Callable[[], Awaitable[Any]], *, within: float = 3.0) -> None:
    """Poll ``check`` (an async function returning truthy) until it holds, failing after
    ``within`` seconds (well under the read caches' 10 s TTL by default, so passing means a
    change was heard, not timed out)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not within the time")
        await asyncio.sleep(0.05)
