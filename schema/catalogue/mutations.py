from __future__ import annotations

from typing import ClassVar, Self

import strawberry
from strawberry import Info

from catalogue import service
from catalogue.errors import CatalogueErrorCode
from catalogue.models import Product
from catalogue.policy import CATALOGUE, CatalogueOp
from schema.catalogue.inputs import ProductUpsertInput
from schema.catalogue.types import ProductType
from schema.context import Context
from schema.errors import UserError
from schema.mutations import Payload, Write, run
from schema.permissions import allowed


@strawberry.type
class CatalogueError(UserError):
    code: CatalogueErrorCode
    amount_code: ClassVar = CatalogueErrorCode.INVALID_PRICE


@strawberry.type
class ProductUpsertPayload(Payload[Product], errors=CatalogueError):
    product: ProductType | None = None
    user_errors: list[CatalogueError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: Product, write: Write) -> Self:
        return cls(product=ProductType.from_model(result))


@strawberry.type
class CatalogueMutation:
    @strawberry.mutation(
        permission_classes=[allowed(CATALOGUE, CatalogueOp.UPSERT_PRODUCT)],
        description="Create a product, or update the one with the same SKU.",
    )
    async def product_upsert(
        self, info: Info[Context, None], input: ProductUpsertInput
    ) -> ProductUpsertPayload:
        async def upsert(m: Write) -> Product:
            price = m.money(input.list_price, "list_price")
            return await service.upsert_product(
                m.session, m.principal, m.clock, sku=input.sku, name=input.name,
                list_price_minor=price.minor, currency=price.currency, category=input.category,
                margin_rate_bp=input.margin_rate_bp, active=input.active,
                subscription_term_months=input.subscription_term_months,
            )  # fmt: skip

        return await run(info, ProductUpsertPayload, upsert)
