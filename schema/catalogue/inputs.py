from __future__ import annotations

import strawberry

from schema.money import MoneyInput


@strawberry.input
class ProductUpsertInput:
    sku: str
    name: str
    list_price: MoneyInput
    category: str = ""
    margin_rate_bp: int = strawberry.field(
        default=0, description="Internal contribution margin, basis points of list price."
    )
    active: bool = True
    subscription_term_months: int | None = strawberry.field(
        default=None,
        description="Set for a subscription product: the months of one term. A sale or won deal "
        "of it starts or extends a subscription.",
    )
