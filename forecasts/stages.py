"""How likely an open registered deal is to close, by stage. Deal registrations carry a
stage (their status) but no probability, so forecasts read one per stage from this table
(documented in docs/recurring.md). A won deal is revenue, not pipeline; rejected, withdrawn,
lost and expired deals are out of the pipeline; a draft is not registered yet."""

from __future__ import annotations

from deal_registration.registrations.models import DealStatus

# Basis points (10,000 = certain).
STAGE_PROBABILITY_BP: dict[DealStatus, int] = {
    DealStatus.SUBMITTED: 1_000,
    DealStatus.UNDER_REVIEW: 2_000,
    DealStatus.APPROVED: 6_000,  # protected: the vendor backs the partner on this customer
}

OPEN_STATUSES = tuple(STAGE_PROBABILITY_BP)
