"""Demo sale registration for Northwind: a registry of 1,000 serials and a few claims in
various states. Idempotent: a claim whose invoice number its partner holds already is not
made again (idempotency keys expire; a rerun weeks later must not add claims), the import
is a no-op the second time."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.attachments import ProofFile
from deal_registration.sales import review, serials, submission
from deal_registration.sales.models import RejectReason, ReverseReason, SaleClaim
from deal_registration.storage import Storage
from infra.clock import Clock, FrozenClock
from partners.models import Partner, User
from partners.roles import Principal

DEMO_SKU = "NW-ROUTER-X1"
SHIPPED_AT = datetime(2026, 9, 1, tzinfo=UTC)


def _principal(user: User) -> Principal:
    return Principal(
        vendor_id=user.vendor_id, role=user.role, user_id=user.id, partner_id=user.partner_id,
        email=user.email,
    )  # fmt: skip


def registry_csv(acme: Partner, globex: Partner, shipped: datetime) -> bytes:
    lines = ["serial,sku,shipped_to,region,shipped_at"]
    for n in range(1, 1001):
        partner = acme if n <= 500 else globex
        lines.append(f"DEMO-{n:06d},{DEMO_SKU},{partner.name},{partner.region},{shipped.date()}")
    return ("\n".join(lines) + "\n").encode()


def _pdf(label: str) -> ProofFile:
    body = f"%PDF-1.4\n% channelboard demo invoice {label}\n%%EOF\n".encode()
    return ProofFile(filename=f"invoice-{label}.pdf", data=body)


@dataclass(frozen=True)
class _DemoClaim:
    key: str
    user: str
    serials: list[str]
    amount_minor: int
    days_ago: int
    proof: bool
    then: str = ""  # "approve" | "reject" | "reverse"


DEMO_CLAIMS = (
    _DemoClaim("demo-1", "rep@acme.example", ["DEMO-000001", "DEMO-000002"], 259_800, 6, True),
    _DemoClaim("demo-2", "rep@acme.example", ["DEMO-000003"], 129_900, 4, False),
    _DemoClaim("demo-3", "admin@acme.example", ["DEMO-000004", "DEMO-000005", "DEMO-000006"],
               900_000, 3, True),
    _DemoClaim("demo-4", "rep@globex.example", ["DEMO-000501"], 650_000, 8, True, "approve"),
    _DemoClaim("demo-5", "rep@globex.example", ["DEMO-000010", "DEMO-000502"], 259_800, 5,
               True, "reject"),
    _DemoClaim("demo-6", "rep@acme.example", ["DEMO-000007"], 129_900, 10, True, "reverse"),
)  # fmt: skip


async def seed(
    session: AsyncSession,
    clock: Clock,
    *,
    admin: User,
    acme: Partner,
    globex: Partner,
    users: dict[str, User],
    storage: Storage,
) -> list[SaleClaim]:
    now = clock.now()
    shipped = SHIPPED_AT if SHIPPED_AT < now - timedelta(days=30) else now - timedelta(days=60)
    vendor_admin = _principal(admin)
    # Imported "three days ago", so the demo claims are not flagged as claimed right after
    # an import.
    await serials.import_serials(
        session, vendor_admin, FrozenClock(now - timedelta(days=3)),
        source=io.BytesIO(registry_csv(acme, globex, shipped)), filename="demo-registry.csv",
    )  # fmt: skip
    claims = []
    for demo in DEMO_CLAIMS:
        partner_user = _principal(users[demo.user])
        assert partner_user.partner_id is not None
        invoice_number = f"INV-{demo.key.upper()}"
        existing = (
            await session.exec(
                select(SaleClaim).where(
                    SaleClaim.vendor_id == partner_user.vendor_id,
                    SaleClaim.partner_id == partner_user.partner_id,
                    SaleClaim.invoice_number == invoice_number,
                )
            )
        ).first()
        if existing is not None:
            claims.append(existing)
            continue
        claim = await submission.create_claim(
            session, partner_user, clock, storage, serial_numbers=demo.serials,
            customer_name="Contoso Ltd", invoice_number=invoice_number,
            sale_date=(now - timedelta(days=demo.days_ago)).date(),
            amount_minor=demo.amount_minor, currency="USD", idempotency_key=demo.key,
            proof_files=[_pdf(demo.key)] if demo.proof else (),
        )  # fmt: skip
        if demo.then == "approve":
            await review.approve(session, vendor_admin, clock, claim_id=claim.id, note="Demo")
        elif demo.then == "reject":
            await review.reject(
                session, vendor_admin, clock, claim_id=claim.id,
                reason=RejectReason.NOT_ELIGIBLE, note="DEMO-000010 is Acme's serial.",
            )  # fmt: skip
        elif demo.then == "reverse":
            await review.reverse(
                session, vendor_admin, clock, claim_id=claim.id, reason=ReverseReason.REFUNDED
            )
        claims.append(claim)
    return claims
