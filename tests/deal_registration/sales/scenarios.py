"""Sale claim scenarios: a registry of serials for a product, and claims over GraphQL."""

from __future__ import annotations

import io
import uuid
from datetime import date, timedelta
from typing import Any

from deal_registration.sales import serials
from infra.clock import Clock
from infra.db import Database
from partners.roles import Role
from tests.factories import Product, Tenant, add_products

SKU = "NW-WIDGET-1"
LIST_PRICE = 100_00  # 100.00 USD
WIDGET = Product(SKU, LIST_PRICE, name="Widget", margin_rate_bp=0)

CREATE = """
mutation($input: SaleClaimCreateInput!) {
  saleClaimCreate(input: $input) {
    saleClaim { id state rejectReason serials { serial sku outcome } }
    userErrors { field code message }
  }
}"""

CLAIM = """
query($id: ID!) {
  saleClaim(id: $id) {
    id state rejectReason reverseReason customerName
    amount { amountMinor currency }
    serials { serial sku outcome }
    attachments { id filename contentType size sha256 downloadUrl }
  }
}"""


def csv_bytes(rows: list[tuple[str, ...]], header: str | None = None) -> bytes:
    lines = [header or "serial,sku,shipped_to,region,shipped_at,status"]
    lines += [",".join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def registry_rows(
    tenant: Tenant, clock: Clock, count: int, prefix: str = "SN", shipped_days_ago: int = 30
) -> list[tuple[str, ...]]:
    shipped = (clock.now() - timedelta(days=shipped_days_ago)).date().isoformat()
    half = count // 2
    return [
        (
            f"{prefix}-{i:06d}",
            SKU,
            tenant.partners[0 if i <= half else 1].name,
            "EMEA",
            shipped,
            "SHIPPED",
        )
        for i in range(1, count + 1)
    ]


async def seed_registry(
    db: Database, clock: Clock, tenant: Tenant, count: int = 10, *, settle: bool = True
) -> list[str]:
    """A product and ``count`` serials: the first half shipped to partner 0, the rest to
    partner 1. With ``settle`` the clock then moves past the fresh-import risk window."""
    admin = tenant.principal(Role.VENDOR_ADMIN)
    async with db.transaction() as session:
        await add_products(session, clock, tenant, (WIDGET,))
        await serials.import_serials(
            session, admin, clock, source=io.BytesIO(csv_bytes(registry_rows(tenant, clock, count)))
        )
    if settle:
        clock.advance(timedelta(days=2))  # type: ignore[attr-defined]
    return [f"SN{i:06d}" for i in range(1, count + 1)]


def claim_input(serial_numbers: list[str], clock: Clock, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "serials": serial_numbers,
        "customerName": "Initech",
        "invoiceNumber": f"INV-{uuid.uuid4().hex[:8]}",
        "saleDate": clock.now().date().isoformat(),
        "amount": {"amount": "150.00", "currency": "USD"},
    }
    base.update(overrides)
    return base


def today(clock: Clock) -> date:
    return clock.now().date()
