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
