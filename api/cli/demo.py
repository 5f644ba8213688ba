"""`channelboard demo` and `channelboard token`: seeding and development tokens."""

from __future__ import annotations

from datetime import timedelta

from api.auth import issue_token
from api.cli.wiring import announcing
from api.settings import Settings
from catalogue import demo as catalogue_demo
from deal_registration.registrations import demo as deals_demo
from deal_registration.sales import demo as sales_demo
from earnings import demo as earnings_demo
from forecasts import demo as forecasts_demo
from infra.clock import Clock, SystemClock
from infra.db import Database
from leaderboards import demo as leaderboards_demo
from partners import demo as partners_demo
from partners import repository


async def seed_demo(
    settings: Settings, clock: Clock | None = None
) -> list[tuple[str, str, str, str | None]]:
    """``clock``: the system clock unless given (tests pin the date the demo is seeded on).
    The demo users: (vendor, email, role, partner)."""
    # The composition root loads the whole schema: not for `token`, which shares this module.
    from api.composition import build_claim_signals, build_storage  # noqa: PLC0415

    db = Database(settings.database_url, waits=settings.database_waits)
    clock = clock or SystemClock()
    try:
        async with announcing(settings, db), db.transaction() as session:
            tenancy = await partners_demo.seed(session, clock)
            await catalogue_demo.seed(session, clock, tenancy.vendor)
            await deals_demo.seed(session, clock, tenancy)
            await sales_demo.seed(
                session, clock, admin=tenancy.users["admin@northwind.example"],
                acme=tenancy.acme, globex=tenancy.globex, users=tenancy.users,
                storage=build_storage(settings),
            )  # fmt: skip
            await earnings_demo.seed(session, clock, tenancy, signals=build_claim_signals())
            # Later domains seed here, in dependency order.
            await leaderboards_demo.seed(session, clock, tenancy.vendor)
            await forecasts_demo.seed(session, clock, tenancy)
            # A second vendor, so that isolation shows in the demo too.
            second = await partners_demo.seed_second_vendor(session, clock)
        partners = {p.id: p.name for p in (tenancy.acme, tenancy.globex, second.partner)}
        return [
            (
                vendor.name,
                u.email,
                u.role.value,
                partners.get(u.partner_id) if u.partner_id else None,
            )
            for vendor, users in ((tenancy.vendor, tenancy.users), (second.vendor, second.users))
            for u in users.values()
        ]
    finally:
        await db.dispose()


async def token_for(settings: Settings, email: str, ttl: timedelta) -> str | None:
    db = Database(settings.database_url, waits=settings.database_waits)
    try:
        async with db.session() as session:
            user = await repository.get_user_by_email(session, email)
        return issue_token(settings.jwt, user, ttl=ttl) if user else None
    finally:
        await db.dispose()
