"""Helpers for the sale-registration tests: a registry of serials, claims over GraphQL,
and GraphQL multipart requests."""

from __future__ import annotations

import io
import json
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import select

from api.auth import principal_for
from catalogue import service as catalogue_service
from deal_registration.sales import serials
from infra.clock import Clock
from infra.db import Database
from partners.roles import Role
from tests.support import GQL, Tenant

SKU = "NW-WIDGET-1"
LIST_PRICE = 100_00  # 100.00 USD

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
    admin = principal_for(tenant.user(Role.VENDOR_ADMIN))
    async with db.transaction() as session:
        await catalogue_service.upsert_product(
            session, admin, clock, sku=SKU, name="Widget", list_price_minor=LIST_PRICE,
            currency="USD",
        )  # fmt: skip
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


async def multipart(
    gql: GQL,
    query: str,
    variables: dict[str, Any],
    files: dict[str, tuple[str, bytes, str]],
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A GraphQL multipart request: ``files`` maps a variable path (e.g.
    'variables.input.file') to (filename, bytes, content type)."""
    keys = {str(i): path for i, path in enumerate(files)}
    form = {
        "operations": json.dumps({"query": query, "variables": variables}),
        "map": json.dumps({k: [p] for k, p in keys.items()}),
    }
    upload = {k: files[p] for k, p in keys.items()}
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["authorization"] = f"Bearer {token}"
    return await gql.client.post("/graphql", data=form, files=upload, headers=hdrs)


PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
EXE = b"MZ\x90\x00" + b"\x00" * 64


async def count_rows(db: Database, model: Any) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def today(clock: Clock) -> date:
    return clock.now().date()
