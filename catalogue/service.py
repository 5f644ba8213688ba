from __future__ import annotations

import re

from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue import repository
from catalogue.errors import CatalogueErrorCode
from catalogue.models import Product
from catalogue.policy import CATALOGUE, CatalogueOp
from infra.clock import Clock
from infra.errors import DomainError, DomainErrors
from infra.money import is_currency
from infra.text import identifier_problem, name_problem
from partners.audit_log import AuditEntity, log_change
from partners.roles import Principal

SKU_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,63}$")
MAX_LIST_PRICE_MINOR = 10**13  # 100 billion in a 2-decimal currency: above is a typo


async def upsert_product(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    sku: str,
    name: str,
    list_price_minor: int,
    currency: str,
    category: str = "",
    margin_rate_bp: int = 0,
    active: bool = True,
    subscription_term_months: int | None = None,
) -> Product:
    """Create the product with this SKU, or update it. Vendor admins only; the vendor is
    the caller's."""
    CATALOGUE.require(principal, CatalogueOp.UPSERT_PRODUCT)
    sku = repository.normalise_sku(sku)
    name = name.strip()
    errors: list[DomainError] = []
    if not SKU_PATTERN.match(sku):
        errors.append(
            DomainError(
                CatalogueErrorCode.INVALID_SKU,
                "A SKU is 1-64 letters, digits, '.', '_' or '-'.",
                "sku",
            )
        )
    if not name:
        errors.append(DomainError(CatalogueErrorCode.REQUIRED, "Give the product a name.", "name"))
    elif len(name) > 200:
        errors.append(DomainError(CatalogueErrorCode.TOO_LONG, "At most 200 characters.", "name"))
    elif problem := name_problem(name):
        errors.append(DomainError(CatalogueErrorCode.INVALID_CHARACTERS, problem, "name"))
    if problem := identifier_problem(category.strip()):
        errors.append(DomainError(CatalogueErrorCode.INVALID_CHARACTERS, problem, "category"))
    if not 0 <= list_price_minor <= MAX_LIST_PRICE_MINOR:
        errors.append(
            DomainError(
                CatalogueErrorCode.INVALID_PRICE,
                "The list price must be zero or more (in minor units).",
                "list_price.amount",
            )
        )
    if not is_currency(currency):
        errors.append(
            DomainError(
                CatalogueErrorCode.INVALID_CURRENCY,
                "Use an ISO 4217 code like USD.",
                "list_price.currency",
            )
        )
    if not -10_000 <= margin_rate_bp <= 10_000:
        errors.append(
            DomainError(
                CatalogueErrorCode.INVALID_MARGIN,
                "The margin rate is between -100% and 100% (basis points).",
                "margin_rate_bp",
            )
        )
    if subscription_term_months is not None and not 1 <= subscription_term_months <= 120:
        errors.append(
            DomainError(
                CatalogueErrorCode.INVALID_TERM,
                "A subscription term is 1 to 120 months (leave it empty for a one-off product).",
                "subscription_term_months",
            )
        )
    if errors:
        raise DomainErrors(errors)
    now = clock.now()
    existing = (await repository.products_by_sku(session, principal.vendor_id, [sku])).get(sku)
    product = existing or Product(
        vendor_id=principal.vendor_id,
        sku=sku,
        name=name,
        list_price_minor=list_price_minor,
        currency=currency,
        created_at=now,
        updated_at=now,
    )
    before = _audited(product) if existing is not None else None
    product.name = name
    product.category = category.strip()[:64]
    product.list_price_minor = list_price_minor
    product.currency = currency
    product.margin_rate_bp = margin_rate_bp
    product.active = active
    product.subscription_term_months = subscription_term_months
    product.updated_at = now
    session.add(product)
    await session.flush()
    after = _audited(product)
    if before is None or before != after:  # an upsert that changes nothing is no change
        await log_change(
            session, principal, clock,
            action="product.created" if existing is None else "product.updated",
            entity_type=AuditEntity.PRODUCT, entity_id=product.id, before=before, after=after,
        )  # fmt: skip
    return product


def _audited(product: Product) -> dict[str, object]:
    return {
        "sku": product.sku, "name": product.name, "category": product.category,
        "list_price_minor": product.list_price_minor, "currency": product.currency,
        "margin_rate_bp": product.margin_rate_bp, "active": product.active,
        "subscription_term_months": product.subscription_term_months,
    }  # fmt: skip
