from __future__ import annotations

import strawberry
from strawberry import relay

from catalogue import repository
from catalogue.models import Product
from schema.money import MoneyType
from schema.permissions import VendorStaff
from schema.relay import visible_nodes


@strawberry.type(name="Product", description="A product partners can sell.")
class ProductType(relay.Node):
    id: relay.NodeID[str]
    sku: str
    name: str
    category: str
    list_price: MoneyType
    active: bool
    subscription_term_months: int | None = strawberry.field(
        description="The months of one term for a subscription product; null for one-off products."
    )
    _margin_rate_bp: strawberry.Private[int]

    @strawberry.field(
        description="Contribution margin as a fraction of list price (basis points). "
        "Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    def margin_rate_bp(self) -> int | None:
        return self._margin_rate_bp

    @classmethod
    def from_model(cls, product: Product) -> ProductType:
        return cls(
            id=str(product.id),
            sku=product.sku,
            name=product.name,
            category=product.category,
            list_price=MoneyType.of(product.list_price_minor, product.currency),
            active=product.active,
            subscription_term_months=product.subscription_term_months,
            _margin_rate_bp=product.margin_rate_bp,
        )

    resolve_nodes = visible_nodes(repository.products_by_ids)
