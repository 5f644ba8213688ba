from __future__ import annotations

from collections.abc import Iterable

import strawberry
from strawberry import Info, relay

from catalogue import repository
from catalogue.models import Product
from schema.context import Context
from schema.money import MoneyType
from schema.permissions import VendorStaff
from schema.relay import parse_node_ids


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
    def margin_rate_bp(self) -> int:
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
        principal = info.context.principal
        ids = parse_node_ids(node_ids)
        if principal is None:
            return [None] * len(ids)
        found = await repository.products_by_ids(
            info.context.session, principal, [i for i in ids if i is not None]
        )
        return [cls.from_model(found[i]) if i in found else None for i in ids]
