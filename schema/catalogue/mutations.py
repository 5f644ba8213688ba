from __future__ import annotations

import strawberry
from strawberry import Info

from catalogue import service
from catalogue.errors import CatalogueErrorCode
from catalogue.policy import CATALOGUE, CatalogueOp
from infra.errors import DomainError
from schema.catalogue.types import ProductType
from schema.context import Context
from schema.errors import UserError, user_errors
from schema.money import MoneyInput
from schema.mutations import mutate
from schema.permissions import allowed


@strawberry.type
class CatalogueError(UserError):
    code: CatalogueErrorCode


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


@strawberry.type
class ProductUpsertPayload:
    product: ProductType | None = None
    user_errors: list[CatalogueError] = strawberry.field(default_factory=list)


@strawberry.type
class CatalogueMutation:
    @strawberry.mutation(
        permission_classes=[allowed(CATALOGUE, CatalogueOp.UPSERT_PRODUCT)],
        description="Create a product, or update the one with the same SKU.",
    )
    async def product_upsert(
        self, info: Info[Context, None], input: ProductUpsertInput
    ) -> ProductUpsertPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        currency = input.list_price.currency.strip().upper()
        try:
            price = input.list_price.to_minor()
        except ValueError as exc:
            error = DomainError(
                CatalogueErrorCode.INVALID_PRICE, f"Not a valid amount: {exc}.", "list_price.amount"
            )
            return ProductUpsertPayload(
                user_errors=user_errors([error], CatalogueError, CatalogueErrorCode)
            )
        outcome = await mutate(
            ctx,
            lambda s: service.upsert_product(
                s, principal, ctx.services.clock, sku=input.sku, name=input.name,
                list_price_minor=price, currency=currency, category=input.category,
                margin_rate_bp=input.margin_rate_bp, active=input.active,
            ),
        )  # fmt: skip
        if outcome.result is None:
            return ProductUpsertPayload(
                user_errors=user_errors(outcome.errors, CatalogueError, CatalogueErrorCode)
            )
        return ProductUpsertPayload(product=ProductType.from_model(outcome.result))
