"""One rule for splitting an amount over lines (infra.money.split_minor)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from deal_registration.sales import repository, transitions
from deal_registration.sales.models import ClaimState, SaleClaim, SaleClaimSerial, SerialOutcome
from infra.money import split_minor

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses

NOW = datetime(2026, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "weights", "shares"),
    [
        (100, [1, 1, 1], [33, 33, 34]),  # the remainder on the last line
        (1001, [2, 1], [667, 334]),
        (1000, [0, 0], [0, 1000]),  # no weight: the last line takes everything
        (500, [7], [500]),
        (0, [1, 2], [0, 0]),
        (10, [], []),
    ],
)
def test_shares_add_up_with_the_remainder_on_the_last_line(
    amount: int, weights: list[int], shares: list[int]
) -> None:
    assert split_minor(amount, weights) == shares
    assert sum(shares) == (amount if weights else 0)


async def test_an_approved_claim_puts_the_remainder_on_its_last_sku_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim's amount over its SKUs follows the same rule as a deal's over its lines
    (it used to put the remainder on the first SKU)."""
    claim = SaleClaim(
        vendor_id=uuid.uuid4(), partner_id=uuid.uuid4(), rep_user_id=uuid.uuid4(),
        customer_name="c", invoice_number="i", sale_date=date(2026, 1, 1), amount_minor=1000,
        currency="USD", state=ClaimState.APPROVED, created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    judged = [
        SaleClaimSerial(claim_id=claim.id, serial=f"S{i}", sku=sku, outcome=SerialOutcome.VALID)
        for i, sku in enumerate(["A", "B", "C"])
    ]

    async def claim_serials(session: object, claim_id: uuid.UUID) -> list[SaleClaimSerial]:
        return judged

    monkeypatch.setattr(repository, "claim_serials", claim_serials)
    approved = await transitions.approved_sale(None, claim)  # type: ignore[arg-type]
    assert [(line.sku, line.amount_minor) for line in approved.lines] == [
        ("A", 333),
        ("B", 333),
        ("C", 334),
    ]
