"""Factories, the one way tests build what they need: a tenant (a vendor with a user of every
role), a caller's ``Principal``, a Relay global id, catalogue products, a contest, the source
events other domains react to (recorded in the outbox as the sales and deal services record
them), and a wait for a transaction to block on another's lock."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry import relay

from api.auth import principal_for
from catalogue import service as catalogue_service
from deal_registration.events import DealWon, Line, SaleApproved, SaleReversed
from infra.clock import Clock
from infra.db import Database
from infra.outbox import OutboxEvent, record_event
from leaderboards import service as leaderboards_service
from leaderboards.models import Contest
from partners import service as partners_service
from partners.models import Partner, User, Vendor
from partners.roles import Principal, Role
from schema.context import Services
from tests.support import eventually

_seq = itertools.count(1)

# Upload samples: the smallest files each content check recognises (or refuses).
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
EXE = b"MZ\x90\x00" + b"\x00" * 64


@dataclass
class Tenant:
    vendor: Vendor
    partners: list[Partner]
    users: dict[Role | tuple[Role, int], User] = field(default_factory=dict)

    def user(self, role: Role, partner_index: int = 0) -> User:
        if role.is_partner:
            return self.users[(role, partner_index)]
        return self.users[role]

    def principal(self, role: Role, partner_index: int = 0) -> Principal:
        """The principal of this tenant's user of ``role`` (of partner ``partner_index``)."""
        return principal_of(self.user(role, partner_index))


async def create_tenant(
    session: AsyncSession, clock: Clock, *, partners: int = 2, name: str | None = None
) -> Tenant:
    """A vendor with ``partners`` partner organisations, one user of each vendor role, and a
    partner admin and rep per partner; the channel manager is assigned to partner 0 only."""
    n = next(_seq)
    slug = f"v{n}-{uuid.uuid4().hex[:6]}"
    vendor = await partners_service.create_vendor(
        session, clock, name=name or f"Vendor {n}", slug=slug
    )
    tenant = Tenant(vendor=vendor, partners=[])
    for i in range(partners):
        tenant.partners.append(
            await partners_service.create_partner(
                session,
                clock,
                vendor_id=vendor.id,
                name=f"Partner {n}.{i}",
                region="EMEA",
                internal_notes=f"secret notes {n}.{i}",
            )  # fmt: skip
        )
    for role in (Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER, Role.FINANCE):
        tenant.users[role] = await partners_service.create_user(
            session, clock, vendor_id=vendor.id, email=f"{role.value.lower()}@{slug}.example",
            role=role, display_name=role.value.title(),
        )  # fmt: skip
    for i, partner in enumerate(tenant.partners):
        for role in (Role.PARTNER_ADMIN, Role.PARTNER_REP):
            tenant.users[(role, i)] = await partners_service.create_user(
                session, clock, vendor_id=vendor.id, partner_id=partner.id,
                email=f"{role.value.lower()}{i}@{slug}.example", role=role,
                display_name=f"{role.value.title()} {i}",
            )  # fmt: skip
    if tenant.partners:
        await partners_service.assign_manager(
            session, clock, manager=tenant.users[Role.CHANNEL_MANAGER], partner=tenant.partners[0]
        )
    return tenant


def principal_of(user: User) -> Principal:
    """The principal a signed-in ``user`` acts as (built as authentication builds it)."""
    return principal_for(user)


def gid(row: SQLModel | str, row_id: uuid.UUID | str | None = None) -> str:
    """The Relay global id clients receive and send: of a row whose GraphQL type is named as
    its model (``gid(contest)``), or of a type name and an id (``gid("User", user_id)``)."""
    if isinstance(row, str):
        assert row_id is not None
        return str(relay.GlobalID(row, str(row_id)))
    return str(relay.GlobalID(type(row).__name__, str(row.id)))


@dataclass(frozen=True)
class Product:
    sku: str
    list_price_minor: int
    name: str | None = None  # the SKU in title case
    category: str = ""
    margin_rate_bp: int = 4_000
    currency: str = "USD"
    subscription_term_months: int | None = None  # set: a subscription product


# The catalogue most tests sell from (deal registrations' lines, claims' amounts).
CATALOGUE = (
    Product("NW-ROUTER-X1", 129_900),
    Product("NW-SWITCH-48", 249_900),
    Product("NW-AP-6E", 45_900),
)


async def add_products(
    session: AsyncSession, clock: Clock, tenant: Tenant, products: tuple[Product, ...] = CATALOGUE
) -> None:
    """Upsert ``products`` into the tenant's catalogue, as its vendor admin."""
    admin = tenant.principal(Role.VENDOR_ADMIN)
    for p in products:
        await catalogue_service.upsert_product(
            session, admin, clock, sku=p.sku, name=p.name or p.sku.title(),
            list_price_minor=p.list_price_minor, currency=p.currency, category=p.category,
            margin_rate_bp=p.margin_rate_bp, subscription_term_months=p.subscription_term_months,
        )  # fmt: skip


async def create_contest(
    db: Database, clock: Clock, tenant: Tenant, *, publish: bool = True, **settings: Any
) -> Contest:
    """A contest that started an hour ago and runs 30 days (``settings`` override any
    ``ContestSettings`` field), published unless ``publish`` is false."""
    now = clock.now()
    values: dict[str, Any] = {
        "name": "Q4 push",
        "starts_at": now - timedelta(hours=1),
        "ends_at": now + timedelta(days=30),
        **settings,
    }
    admin = tenant.principal(Role.VENDOR_ADMIN)
    async with db.transaction() as session:
        contest = await leaderboards_service.create_contest(
            session, admin, clock, settings=leaderboards_service.ContestSettings(**values)
        )
        if publish:
            contest = await leaderboards_service.publish_contest(
                session, admin, clock, contest_id=contest.id
            )
    return contest


async def approve_sale(
    db: Database,
    clock: Clock,
    tenant: Tenant,
    *,
    partner: int = 0,
    amount: int = 100_00,
    units: int = 1,
    sku: str = "NW-ROUTER-X1",
    lines: list[Line] | None = None,
    at: datetime | None = None,
    sold_at: datetime | None = None,
    rep: uuid.UUID | None = None,
    currency: str = "USD",
    region: str = "EMEA",
    customer: str = "",
) -> OutboxEvent:
    """A ``SaleApproved`` event, approved ``at`` (default now) and sold then unless
    ``sold_at`` says otherwise; its lines default to ``units`` of ``sku`` for ``amount``."""
    when = at or clock.now()
    sale = SaleApproved(
        claim_id=uuid.uuid4(), partner_id=tenant.partners[partner].id, rep_user_id=rep,
        region=region, currency=currency, amount_minor=amount,
        lines=[Line(sku=sku, units=units, amount_minor=amount)] if lines is None else lines,
        sold_at=sold_at or when, approved_at=when, customer_name=customer,
    )  # fmt: skip
    return await _record(db, clock, tenant, sale, sale.claim_id, when)


async def reverse_sale(
    db: Database,
    clock: Clock,
    tenant: Tenant,
    approved: OutboxEvent,
    *,
    at: datetime | None = None,
    amount: int | None = None,
    reason: str = "refund",
) -> OutboxEvent:
    """A ``SaleReversed`` event for an approved sale: all of it, or ``amount``."""
    sale = SaleApproved.parse(approved.payload)
    when = at or clock.now()
    reversal = SaleReversed(
        claim_id=sale.claim_id, partner_id=sale.partner_id, rep_user_id=sale.rep_user_id,
        region=sale.region, currency=sale.currency,
        amount_minor=sale.amount_minor if amount is None else amount,
        reverses_event_id=approved.id, reason=reason, lines=sale.lines,
        sold_at=sale.sold_at, reversed_at=when,
    )  # fmt: skip
    return await _record(db, clock, tenant, reversal, sale.claim_id, when)


async def win_deal(
    db: Database,
    clock: Clock,
    tenant: Tenant,
    *,
    partner: int = 0,
    amount: int = 500_00,
    rep: uuid.UUID | None = None,
) -> OutboxEvent:
    """A ``DealWon`` event for a registered deal won now."""
    when = clock.now()
    deal = DealWon(
        registration_id=uuid.uuid4(), partner_id=tenant.partners[partner].id, rep_user_id=rep,
        region="EMEA", currency="USD", amount_minor=amount, won_at=when,
    )  # fmt: skip
    return await _record(db, clock, tenant, deal, deal.registration_id, when)


async def _record(
    db: Database,
    clock: Clock,
    tenant: Tenant,
    event: SaleApproved | SaleReversed | DealWon,
    aggregate_id: uuid.UUID,
    at: datetime,
) -> OutboxEvent:
    async with db.transaction() as session:
        return await record_event(
            session, clock, vendor_id=tenant.vendor.id, type=event.type,
            aggregate_id=aggregate_id, payload=event.to_payload(), occurred_at=at,
        )  # fmt: skip


async def dispatch(services: Services) -> int:
    """Run the outbox's pending events through their handlers, as the app does after a
    commit; the number of events handled."""
    return await services.outbox.dispatch_pending()


async def blocked_on_a_lock(session: AsyncSession, task: asyncio.Task[Any]) -> None:
    """Return once another transaction on this database waits for a lock (on PostgreSQL;
    on SQLite at once, where a writer waits for the write lock inside the driver). Watches
    the server's view, not a timer. ``task`` ending first fails the test: it never met the
    lock the test holds, so the race the test stages did not happen."""
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        return

    async def blocked() -> bool:
        # The server's activity view is a snapshot per transaction: drop it, or a poll
        # that came before the wait would hide the wait from every later poll.
        await session.execute(text("SELECT pg_stat_clear_snapshot()"))
        waiting = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"
            )
        )
        if waiting:
            return True
        if task.done():
            raise AssertionError(f"the task ended without waiting for a lock: {task!r}")
        return False

    await eventually(blocked, within=10)
