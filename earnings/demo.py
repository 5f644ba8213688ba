"""Demo earnings for Northwind: a program with tiers and a spiff, and three months of
credited sales (with a return and a won deal) for Acme and Globex, with statements —
Acme's paid, Globex's held for a missing tax form — so a new user sees real numbers and
explanations right away. It records the SaleApproved/DealWon events like the sales
services do (other consumers react to them; earnings' handler finds them credited)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.events import DealWon, Line, SaleApproved, SaleReversed
from earnings import ledger, payouts, programs
from earnings.claims import ClaimSignals
from earnings.models import PayoutStatus, Program
from earnings.programs import BaseRate, Rules, Spiff, Tier
from infra.clock import Clock, FrozenClock
from infra.outbox import OutboxEvent, record_event
from partners.demo import DemoTenancy
from partners.roles import Principal, Role

PROGRAM = "Northwind Partner Rewards"
PRICES = {
    "NW-ROUTER-X1": 129_900,
    "NW-SWITCH-48": 249_900,
    "NW-AP-6E": 45_900,
    "NW-FW-500": 459_900,
    "NW-CARE-3Y": 39_900,
}
# partner, when, lines (sku, units), rep?  ``when`` is (months back, day of that month) for
# the three months that ended, whose statements must come out the same on every date (a
# history placed N days before today moves sales between months and, on some days, puts
# enough of them into one month to trip the above-trailing-average hold); or (0, days ago)
# for this month, pulled towards today early in a month (see ``_this_month``).
SALES = (
    ("acme", (3, 10), (("NW-SWITCH-48", 2),), True),
    ("acme", (3, 20), (("NW-FW-500", 1),), True),
    ("acme", (2, 5), (("NW-FW-500", 2),), True),  # one firewall returned on day 12
    ("acme", (2, 22), (("NW-ROUTER-X1", 4),), False),
    ("acme", (0, 12), (("NW-SWITCH-48", 3), ("NW-CARE-3Y", 3)), True),
    ("acme", (0, 3), (("NW-AP-6E", 10),), True),
    ("globex", (3, 15), (("NW-ROUTER-X1", 2),), True),
    ("globex", (2, 18), (("NW-AP-6E", 6),), True),
    ("globex", (1, 12), (("NW-SWITCH-48", 1),), False),
    ("globex", (0, 5), (("NW-FW-500", 1),), True),
)
HISTORY_MONTHS = 3
RETURNED = ("acme", (2, 5))
RETURN_AT = (2, 12)
DEAL_WON_AT = (1, 8)


def _this_month(now: datetime, days: int) -> datetime:
    """``days`` before ``now``, but never before the middle of the time this month has
    run, so this month's sales stay in this month (and out of the statements)."""
    elapsed = now - payouts.month_start(now)
    return now - min(timedelta(days=days), elapsed / 2)


def demo_instant(now: datetime, when: tuple[int, int]) -> datetime:
    """(months back, day of month) at 10:00 UTC, or (0, days ago): see ``SALES``."""
    back, day = when
    if back == 0:
        return _this_month(now, day)
    return _months_back(now, back) + timedelta(days=day - 1, hours=10)


def _months_back(now: datetime, back: int) -> datetime:
    month = payouts.month_start(now)
    for _ in range(back):
        month = payouts.previous_month(month)
    return month


def demo_rules(now: datetime) -> Rules:
    return Rules(
        base_rates=(
            BaseRate(rate_bp=800),
            BaseRate(rate_bp=1_000, category="security"),
            BaseRate(per_unit_minor=4_000, sku="NW-CARE-3Y"),
        ),
        window_days=30,
        tiers=(
            Tier("Silver", 1_000_000, 100, max_refund_rate_bp=2_500),
            Tier("Gold", 2_500_000, 200, max_refund_rate_bp=1_000),
        ),
        spiffs=(
            Spiff(
                sku="NW-AP-6E",
                per_unit_minor=2_500,
                starts_at=now - timedelta(days=7),
                ends_at=now + timedelta(days=21),
                region="EMEA",
            ),
        ),  # fmt: skip
        deal_bonus_bp=100,
        deal_bonus_minor=25_000,
    )


async def seed(
    session: AsyncSession, clock: Clock, tenancy: DemoTenancy, *, signals: ClaimSignals
) -> None:
    """Idempotent: nothing happens when the demo program exists."""
    vendor = tenancy.vendor
    partners = {"acme": tenancy.acme, "globex": tenancy.globex}
    reps = {key: tenancy.users[f"rep@{key}.example"] for key in partners}
    exists = await session.exec(
        select(Program.id).where(Program.vendor_id == vendor.id, Program.name == PROGRAM)
    )
    if exists.first() is not None:
        return
    now = clock.now()
    admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN)
    finance = Principal(vendor_id=vendor.id, role=Role.FINANCE)
    await programs.create_program(
        session, admin, clock, name=PROGRAM, currency="USD", rules=demo_rules(now),
        effective_from=now - timedelta(days=120),
    )  # fmt: skip
    await payouts.set_profile(
        session, finance, clock, partner_id=partners["acme"].id, tax_form_on_file=True,
        bank_account="DE89370400440532013000",
    )  # fmt: skip

    async def credit(
        at: datetime, event: SaleApproved | SaleReversed | DealWon, aggregate_id: uuid.UUID
    ) -> OutboxEvent:
        frozen = FrozenClock(at)
        recorded = await record_event(
            session, frozen, vendor_id=vendor.id, type=event.type, aggregate_id=aggregate_id,
            payload=event.to_payload(),
        )  # fmt: skip
        await ledger.credit_in_session(session, frozen, recorded, signals=signals)
        return recorded

    recorded: dict[tuple[str, tuple[int, int]], OutboxEvent] = {}
    for key, when, items, with_rep in SALES:
        partner = partners[key]
        at = demo_instant(now, when)
        lines = [Line(sku, units, PRICES[sku] * units) for sku, units in items]
        claim = uuid.uuid4()
        sale = SaleApproved(
            claim_id=claim, partner_id=partner.id,
            rep_user_id=reps[key].id if with_rep else None, region=partner.region,
            currency="USD", amount_minor=sum(ln.amount_minor for ln in lines), lines=lines,
            sold_at=at - timedelta(hours=2), approved_at=at,
        )  # fmt: skip
        recorded[(key, when)] = await credit(at, sale, claim)
    returned = SaleApproved.parse(recorded[RETURNED].payload)
    returned_at = demo_instant(now, RETURN_AT)
    await credit(
        returned_at,
        SaleReversed(
            claim_id=returned.claim_id, partner_id=returned.partner_id,
            rep_user_id=returned.rep_user_id, region=returned.region, currency="USD",
            amount_minor=PRICES["NW-FW-500"], reverses_event_id=recorded[RETURNED].id,
            reason="one firewall returned", lines=[Line("NW-FW-500", 1, PRICES["NW-FW-500"])],
            sold_at=returned.sold_at, reversed_at=returned_at,
        ),
        returned.claim_id,
    )  # fmt: skip
    deal = uuid.uuid4()
    won_at = demo_instant(now, DEAL_WON_AT)
    await credit(
        won_at,
        DealWon(
            registration_id=deal, partner_id=partners["acme"].id, rep_user_id=reps["acme"].id,
            region=partners["acme"].region, currency="USD", amount_minor=3_000_000,
            won_at=won_at,
        ),
        deal,
    )  # fmt: skip
    # Statements for the three months that ended: Acme's older ones paid, its last one
    # pending; Globex's held until its tax form is on file.
    ended = payouts.month_start(now)
    month = _months_back(now, HISTORY_MONTHS)
    made = []
    while month < ended:
        made += await payouts.generate_statements(
            session, finance, clock, month=month, signals=signals
        )
        month = payouts.next_month(month)
    acme = sorted(
        (s for s in made if s.partner_id == partners["acme"].id), key=lambda s: s.period_start
    )
    for statement in acme[:-1]:
        if statement.status is PayoutStatus.PENDING:
            await payouts.approve(session, finance, clock, statement_id=statement.id)
            await payouts.mark_paid(
                session, finance, clock, statement_id=statement.id,
                reference=f"NW-{statement.period_start:%Y%m}-ACME",
            )  # fmt: skip
    await session.flush()
