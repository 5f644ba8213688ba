"""What one more sale would do: projected tier and payout under the current program."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue.repository import normalise_sku, products_by_sku
from earnings import programs
from earnings.claims import ClaimSignals
from earnings.errors import EarningsErrorCode, currency_error
from earnings.ledger import standing_at
from earnings.programs import Rules, Standing, TierStatus
from earnings.repository import Scope
from earnings.rounding import apply_bp, format_bp
from infra.clock import Clock
from infra.errors import DomainError
from infra.money import Money
from partners.models import Partner

MAX_FORECAST_MINOR = 10**12


@dataclass(frozen=True)
class Forecast:
    currency: str
    additional_revenue_minor: int
    sku: str | None
    units: int
    current: TierStatus
    projected: TierStatus
    base_minor: int
    uplift_minor: int
    spiff_minor: int
    explanation: str

    @property
    def projected_earning_minor(self) -> int:
        return self.base_minor + self.uplift_minor + self.spiff_minor


async def forecast(
    session: AsyncSession,
    clock: Clock,
    *,
    scope: Scope,
    additional_revenue_minor: int,
    currency: str,
    sku: str | None = None,
    units: int = 1,
    signals: ClaimSignals,
) -> Forecast | None:
    """None when the vendor has no program in force in ``currency``."""
    if bad_currency := currency_error(currency, "additional_revenue.currency"):
        raise bad_currency
    if not 0 < additional_revenue_minor <= MAX_FORECAST_MINOR:
        raise DomainError(
            EarningsErrorCode.INVALID_AMOUNT,
            "The additional revenue is a positive amount.",
            "additional_revenue",
        )
    if not 0 <= units <= 1_000_000:
        raise DomainError(EarningsErrorCode.INVALID_AMOUNT, "Units are 0 or more.", "units")
    category = ""
    if sku:
        sku = normalise_sku(sku)
        product = (await products_by_sku(session, scope.vendor_id, [sku])).get(sku)
        if product is None or not product.active:
            raise DomainError(EarningsErrorCode.NOT_FOUND, "No such product.", "sku")
        category = product.category
    found = await programs.vendor_programs(session, scope.vendor_id, currency)
    now = clock.now()
    version = await programs.version_at(session, found[0].id, now) if found else None
    if not found or version is None:
        return None
    program = found[0]
    rules = Rules.from_json(version.rules)
    standing = await standing_at(
        session, vendor_id=scope.vendor_id, partner_id=scope.partner_id, currency=currency,
        at=now, window_days=rules.window_days, signals=signals,
    )  # fmt: skip
    projected_standing = Standing(
        qualified_revenue_minor=standing.qualified_revenue_minor + additional_revenue_minor,
        approved_revenue_minor=standing.approved_revenue_minor + additional_revenue_minor,
        reversed_revenue_minor=standing.reversed_revenue_minor,
        approved_share_bp=standing.approved_share_bp,
    )
    current = programs.status_from(program, version, rules, standing)
    projected = programs.status_from(program, version, rules, projected_standing)
    rate = rules.base_rate_for(sku or "", category)
    base = programs.base_amount(rate, additional_revenue_minor, units) if rate else 0
    uplift = apply_bp(additional_revenue_minor, projected.tier.uplift_bp if projected.tier else 0)
    partner = await session.get(Partner, scope.partner_id)
    region = partner.region if partner else ""
    spiff = sum(
        s.per_unit_minor * units for s in rules.spiffs if sku and s.applies(sku, region, now)
    )
    total = base + uplift + spiff

    def m(amount: int) -> str:
        return Money(amount, currency).format()

    sale = f"A further sale of {m(additional_revenue_minor)}"
    if projected.tier is not None and (
        current.tier is None or projected.tier.threshold_minor > current.tier.threshold_minor
    ):
        rate_change = (
            f", raising your rate from {format_bp(current.rate_bp)} to "
            f"{format_bp(projected.rate_bp)}"
            if current.rate_bp is not None and projected.rate_bp is not None
            else ""
        )
        text = (
            f"{sale} would move you to {projected.tier.name} "
            f"({m(projected.tier.threshold_minor)} over {rules.window_days} days){rate_change}, "
            f"and earn about {m(total)}."
        )
    else:
        where = f"at your current tier ({current.tier.name})" if current.tier else "at base rate"
        text = f"{sale} would earn about {m(total)} {where}."
        if projected.next_tier is not None and projected.amount_to_next_minor is not None:
            text += (
                f" {m(projected.amount_to_next_minor)} more would reach {projected.next_tier.name}."
            )
    return Forecast(
        currency=currency,
        additional_revenue_minor=additional_revenue_minor,
        sku=sku,
        units=units,
        current=current,
        projected=projected,
        base_minor=base,
        uplift_minor=uplift,
        spiff_minor=spiff,
        explanation=text,
    )
