"""The vendor's rules for sale claims (vendor admins change them)."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.sales import repository
from deal_registration.sales.errors import SaleClaimErrorCode
from deal_registration.sales.locks import lock_for_write
from deal_registration.sales.models import SalesSettings
from deal_registration.sales.policy import SALES, SalesOp
from infra import limits
from infra.clock import Clock
from infra.errors import DomainError, DomainErrors
from infra.money import is_currency
from partners.audit_log import AuditEntity, log_change
from partners.roles import Principal

MAX_SERIALS = limits.MAX_SERIALS_PER_CLAIM  # a claim's units: infra.limits


async def update_settings(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    claim_window_days: int | None = None,
    auto_approve_limit_minor: int | None = None,
    auto_approve_currency: str | None = None,
    proof_required: bool | None = None,
    max_serials_per_claim: int | None = None,
) -> SalesSettings:
    """Change the vendor's claim rules (vendor admins). Unset
    arguments keep their current value."""
    SALES.require(principal, SalesOp.UPDATE_SETTINGS)
    SALES.require(principal, SalesOp.REVERSE)
    SALES.require(principal, SalesOp.REQUEST_PROOF)
    SALES.require(principal, SalesOp.REJECT)
    SALES.require(principal, SalesOp.APPROVE)
    code = SaleClaimErrorCode.INVALID_SETTING
    errors: list[DomainError] = []
    if claim_window_days is not None and not 1 <= claim_window_days <= 3650:
        errors.append(DomainError(code, "Between 1 and 3650 days.", "claim_window_days"))
    if auto_approve_limit_minor is not None and not 0 <= auto_approve_limit_minor <= 10**13:
        errors.append(
            DomainError(
                code, "Zero or more (zero turns auto-approval off).", "auto_approve_limit.amount"
            )
        )
    if auto_approve_currency is not None:
        auto_approve_currency = auto_approve_currency.strip().upper()
        if not is_currency(auto_approve_currency):
            errors.append(
                DomainError(code, "Use an ISO 4217 code like USD.", "auto_approve_limit.currency")
            )
    if max_serials_per_claim is not None and not 1 <= max_serials_per_claim <= MAX_SERIALS:
        errors.append(DomainError(code, f"Between 1 and {MAX_SERIALS}.", "max_serials_per_claim"))
    if errors:
        raise DomainErrors(errors)
    await lock_for_write(session)
    found = await session.get(SalesSettings, principal.vendor_id)
    settings = found or repository.default_settings(principal.vendor_id)
    before = _audited(settings)
    if claim_window_days is not None:
        settings.claim_window_days = claim_window_days
    if auto_approve_limit_minor is not None:
        settings.auto_approve_limit_minor = auto_approve_limit_minor
    if auto_approve_currency is not None:
        settings.auto_approve_currency = auto_approve_currency
    if proof_required is not None:
        settings.proof_required = proof_required
    if max_serials_per_claim is not None:
        settings.max_serials_per_claim = max_serials_per_claim
    settings.updated_at = clock.now()
    settings.updated_by_id = principal.user_id
    session.add(settings)
    await session.flush()
    await log_change(
        session, principal, clock, action="sale_claim_settings.updated",
        entity_type=AuditEntity.SALE_CLAIM_SETTINGS, entity_id=principal.vendor_id,
        before=before, after=_audited(settings),
    )  # fmt: skip
    return settings


def _audited(settings: SalesSettings) -> dict[str, object]:
    return {
        "claim_window_days": settings.claim_window_days,
        "auto_approve_limit_minor": settings.auto_approve_limit_minor,
        "auto_approve_currency": settings.auto_approve_currency,
        "proof_required": settings.proof_required,
        "max_serials_per_claim": settings.max_serials_per_claim,
    }
