"""Demo data: Acme's and Globex's forecasts for next quarter (Acme's pre-filled from its
open deals, then revised once: a history to show), and a concentration threshold on the
top partner's share of revenue. Idempotent: nothing happens once the threshold exists."""

from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from forecasts import guardrails, submission
from forecasts.models import ConcentrationThreshold, GuardrailScope, ShareBasis, ShareMetric
from forecasts.quarters import Quarter
from forecasts.submission import LineInput
from infra.clock import Clock
from partners.demo import DemoTenancy
from partners.models import User
from partners.roles import Principal, Role


def _admin_of(user: User) -> Principal:
    return Principal(
        vendor_id=user.vendor_id, role=Role.PARTNER_ADMIN, user_id=user.id,
        partner_id=user.partner_id, email=user.email,
    )  # fmt: skip


def _line(product_line: str, commit: int, best: int) -> LineInput:
    return LineInput(product_line, commit, "USD", best, "USD")


async def seed(session: AsyncSession, clock: Clock, tenancy: DemoTenancy) -> None:
    vendor = tenancy.vendor
    found = await session.exec(
        select(ConcentrationThreshold.id).where(ConcentrationThreshold.vendor_id == vendor.id)
    )
    if found.first() is not None:
        return
    admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN, operator="demo")
    await guardrails.set_threshold(
        session, admin, clock, metric=ShareMetric.TOP_PARTNER_SHARE, basis=ShareBasis.REVENUE,
        scope=GuardrailScope.OVERALL, max_share_bp=7_000, currency="USD",
        reason="No partner above 70 % of a quarter's revenue",
    )  # fmt: skip
    quarter = Quarter.of(clock.now()).next().key
    acme = _admin_of(tenancy.users["admin@acme.example"])
    await submission.submit(
        session, acme, clock, quarter=quarter, currency="USD", prefill=True,
        lines=[_line("networking", 4_000_000, 6_000_000)], note="From the pipeline review",
    )  # fmt: skip
    await submission.submit(
        session, acme, clock, quarter=quarter, currency="USD", prefill=True,
        lines=[_line("networking", 4_500_000, 6_000_000), _line("security", 900_000, 1_500_000)],
        note="Firewall refresh at a bank added",
    )  # fmt: skip
    globex = _admin_of(tenancy.users["admin@globex.example"])
    await submission.submit(
        session, globex, clock, quarter=quarter, currency="USD",
        lines=[_line("networking", 2_000_000, 3_500_000), _line("wireless", 500_000, 800_000)],
    )  # fmt: skip
