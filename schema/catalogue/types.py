from __future__ import annotations

from collections.abc import Iterable

import strawberry
from strawberry import Info, relay

from catalogue import repository
from catalogue.models import Product
from schema.context import Context
from schema.money import MoneyType
from schema.permissions import VendorStaff
from schema.relay import resolve_visible_nodes


@strawberry.type(name="Product", description="A product partners can sell.")
class ProductType(relay.Node):
    id: relay.NodeID[str]
    sku: str
    name: str
    category: str
    list_price: MoneyType
    active: bool
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
            _margin_rate_bp=product.margin_rate_bp,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[ProductType | None]:
        return await resolve_visible_nodes(
            info.context, node_ids, repository.products_by_ids, cls.from_model
        )
