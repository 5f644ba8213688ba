"""Vendor-internal risk flags on claims. They route a claim to review (never auto-approve)
and are shown to vendor staff only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue.models import Product
from deal_registration.attachments import Attachment
from deal_registration.sales.models import (
    RiskFlag,
    RiskKind,
    SaleClaim,
    Serial,
)
from deal_registration.sales.repository import CLAIM_OWNER

BURST_WINDOW = timedelta(hours=1)
BURST_CLAIMS = 10  # more claims than this from one partner in the window is a burst
FRESH_IMPORT = timedelta(hours=24)
ABOVE_LIST_FACTOR = 2  # amount above twice list price x quantity


async def add_flag(
    session: AsyncSession, claim: SaleClaim, kind: RiskKind, detail: str, now: datetime
) -> RiskFlag | None:
    existing = (
        await session.exec(
            select(RiskFlag).where(RiskFlag.claim_id == claim.id, RiskFlag.kind == kind)
        )
    ).first()
    if existing is not None:
        return None
    flag = RiskFlag(
        vendor_id=claim.vendor_id, claim_id=claim.id, kind=kind, detail=detail[:500],
        created_at=now,
    )  # fmt: skip
    session.add(flag)
    await session.flush()
    return flag


async def assess_claim(
    session: AsyncSession, claim: SaleClaim, valid_serials: Sequence[Serial], now: datetime
) -> list[RiskFlag]:
    """Flags a new claim can raise from its own data (invoice, burst, amount, freshness)."""
    flags: list[RiskFlag | None] = []
    reused = (
        await session.exec(
            select(SaleClaim.id).where(
                SaleClaim.vendor_id == claim.vendor_id,
                func.upper(SaleClaim.invoice_number) == claim.invoice_number.upper(),
                SaleClaim.id != claim.id,
            )
        )
    ).first()
    if reused is not None:
        flags.append(
            await add_flag(
                session,
                claim,
                RiskKind.REUSED_INVOICE_NUMBER,
                f"Invoice number also used on claim {reused}.",
                now,
            )  # fmt: skip
        )
    recent = await session.scalar(
        select(func.count())
        .select_from(SaleClaim)
        .where(
            SaleClaim.partner_id == claim.partner_id,
            col(SaleClaim.created_at) >= now - BURST_WINDOW,
        )
    )
    if int(recent or 0) > BURST_CLAIMS:
        flags.append(
            await add_flag(
                session,
                claim,
                RiskKind.CLAIM_BURST,
                f"{recent} claims from this partner in the last hour.",
                now,
            )  # fmt: skip
        )
    if valid_serials:
        skus = [s.sku for s in valid_serials]
        prices = {
            p.sku: p
            for p in await session.exec(
                select(Product).where(
                    Product.vendor_id == claim.vendor_id, col(Product.sku).in_(set(skus))
                )
            )
        }
        if all(prices.get(sku) and prices[sku].currency == claim.currency for sku in skus):
            list_total = sum(prices[sku].list_price_minor for sku in skus)
            if claim.amount_minor > ABOVE_LIST_FACTOR * list_total:
                flags.append(
                    await add_flag(
                        session,
                        claim,
                        RiskKind.AMOUNT_ABOVE_LIST_PRICE,
                        f"Amount {claim.amount_minor} is more than {ABOVE_LIST_FACTOR}x the list "
                        f"price total {list_total} ({claim.currency} minor units).",
                        now,
                    )  # fmt: skip
                )
        fresh = [s.serial for s in valid_serials if now - s.updated_at < FRESH_IMPORT]
        if fresh:
            flags.append(
                await add_flag(
                    session,
                    claim,
                    RiskKind.SERIAL_FRESHLY_IMPORTED,
                    f"Claimed within 24 hours of import: {', '.join(fresh[:10])}.",
                    now,
                )  # fmt: skip
            )
    return [f for f in flags if f is not None]


async def assess_attachment(
    session: AsyncSession, claim: SaleClaim, attachment: Attachment, now: datetime
) -> RiskFlag | None:
    """The same file on another claim (or other submission) of the vendor."""
    other: uuid.UUID | None = (
        await session.exec(
            select(Attachment.owner_id).where(
                Attachment.vendor_id == attachment.vendor_id,
                Attachment.sha256 == attachment.sha256,
                Attachment.id != attachment.id,
                Attachment.owner_id != claim.id,
            )
        )
    ).first()
    if other is None:
        return None
    kind = "claim" if attachment.owner_kind == CLAIM_OWNER else "submission"
    return await add_flag(
        session, claim, RiskKind.REUSED_PROOF_FILE,
        f"The same file (sha256 {attachment.sha256[:12]}…) is attached to {kind} {other}.", now,
    )  # fmt: skip


async def has_flags(session: AsyncSession, claim_id: uuid.UUID) -> bool:
    found = await session.exec(select(RiskFlag.id).where(RiskFlag.claim_id == claim_id))
    return found.first() is not None
