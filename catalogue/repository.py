"""Products are visible to every user of their vendor (partners sell them); the margin
rate is redacted for partner roles in the GraphQL layer's field permission."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from catalogue.models import Product
from infra.search import contains, search_term
from partners.roles import Principal


def normalise_sku(sku: str) -> str:
    return sku.strip().upper()


def readable_products(principal: Principal) -> SelectOfScalar[Product]:
    stmt = select(Product).where(Product.vendor_id == principal.vendor_id)
    if principal.is_partner:
        stmt = stmt.where(col(Product.active).is_(True))
    return stmt


async def products_by_sku(
    session: AsyncSession, vendor_id: uuid.UUID, skus: Iterable[str]
) -> dict[str, Product]:
    wanted = {normalise_sku(s) for s in skus}
    if not wanted:
        return {}
    rows = await session.exec(
        select(Product).where(Product.vendor_id == vendor_id, col(Product.sku).in_(wanted))
    )
    return {p.sku: p for p in rows}


async def get_readable_product(
    session: AsyncSession, principal: Principal, product_id: uuid.UUID
) -> Product | None:
    rows = await session.exec(readable_products(principal).where(Product.id == product_id))
    return rows.first()


async def products_by_ids(
    session: AsyncSession, principal: Principal, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Product]:
    rows = await session.exec(readable_products(principal).where(col(Product.id).in_(list(ids))))
    return {p.id: p for p in rows}


def products_matching(principal: Principal, search: str | None = None) -> SelectOfScalar[Product]:
    """Readable products whose SKU or name contains ``search`` (all when empty)."""
    stmt = readable_products(principal)
    term = search_term(search, "search")
    if term is not None:
        stmt = stmt.where(or_(contains(col(Product.sku), term), contains(col(Product.name), term)))
    return stmt


async def readable_product_by_sku(
    session: AsyncSession, principal: Principal, sku: str
) -> Product | None:
    stmt = readable_products(principal).where(Product.sku == normalise_sku(sku))
    return (await session.exec(stmt)).first()
