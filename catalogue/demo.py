"""The demo catalogue for Northwind Devices."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue import service
from catalogue.models import Product
from infra.clock import Clock
from partners.models import Vendor
from partners.roles import Principal, Role

DEMO_PRODUCTS = (
    # sku, name, category, list price (cents), margin (bp)
    ("NW-ROUTER-X1", "Northwind X1 Edge Router", "networking", 129_900, 3_800),
    ("NW-SWITCH-48", "Northwind 48-port Switch", "networking", 249_900, 4_200),
    ("NW-AP-6E", "Northwind Wi-Fi 6E Access Point", "wireless", 45_900, 3_500),
    ("NW-FW-500", "Northwind F500 Firewall", "security", 459_900, 5_100),
    ("NW-CARE-3Y", "Northwind Care 3-year Support", "services", 39_900, 7_000),
)


async def seed(session: AsyncSession, clock: Clock, vendor: Vendor) -> dict[str, Product]:
    """Idempotent: upserting the same SKUs again changes nothing."""
    admin = Principal(vendor_id=vendor.id, role=Role.VENDOR_ADMIN)
    products = {}
    for sku, name, category, price, margin in DEMO_PRODUCTS:
        products[sku] = await service.upsert_product(
            session, admin, clock, sku=sku, name=name, list_price_minor=price, currency="USD",
            category=category, margin_rate_bp=margin,
        )  # fmt: skip
    return products
