"""Judging one claimed serial against the registry. The order of the checks matters: a
partner learns nothing about a serial shipped to someone else beyond that fact, so the
channel check comes before whether it was returned or already claimed."""

from __future__ import annotations

import uuid
from datetime import date

from deal_registration.sales.models import Serial, SerialOutcome, SerialStatus


def judge(
    found: Serial | None,
    *,
    partner_id: uuid.UUID | None,
    sale_date: date | None,
    today: date,
    claim_window_days: int,
    already_credited: bool,
) -> SerialOutcome:
    """``partner_id`` None judges for the vendor (no channel check); ``sale_date`` None
    skips the date rules (a lookup before the sale date is known)."""
    if found is None or found.status is SerialStatus.VOIDED:
        return SerialOutcome.UNKNOWN_SERIAL
    if partner_id is not None and found.partner_id is not None and found.partner_id != partner_id:
        return SerialOutcome.NOT_SHIPPED_TO_YOUR_CHANNEL
    if found.status is SerialStatus.RETURNED:
        return SerialOutcome.RETURNED
    if sale_date is not None:
        if sale_date > today:
            return SerialOutcome.SALE_DATE_IN_FUTURE
        if sale_date < found.shipped_at.date():
            return SerialOutcome.SOLD_BEFORE_SHIPMENT
        # Days since the sale, not the sale date plus the window: that passes Python's last
        # date for a sale late in the range (9998-12-31 + 3650 days, an OverflowError).
        if (today - sale_date).days > claim_window_days:
            return SerialOutcome.OUTSIDE_CLAIM_WINDOW
    if already_credited:
        return SerialOutcome.ALREADY_CLAIMED
    return SerialOutcome.VALID
