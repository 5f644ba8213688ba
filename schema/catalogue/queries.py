from __future__ import annotations

import strawberry
from strawberry import Info

from catalogue import repository
from infra.errors import DomainError
from schema.catalogue.types import ProductType
from schema.context import Context
from schema.errors import query_error
from schema.permissions import IsAuthenticated
from schema.relay import Connection, paginate


@strawberry.type
class CatalogueQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Your vendor's product catalogue (partners see active products only); "
        "`search`: part of the SKU or name, at most 256 characters (SEARCH_TOO_LONG).",
    )
    async def products(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        search: str | None = None,
    ) -> Connection[ProductType] | None:
        principal = info.context.caller
        try:
            stmt = repository.products_matching(principal, search)
        except DomainError as error:
            raise query_error(error) from error
        return await paginate(
            info.context, stmt, first=first, after=after, to_node=ProductType.from_model
        )

    @strawberry.field(permission_classes=[IsAuthenticated], description="A product by SKU.")
    async def product(self, info: Info[Context, None], sku: str) -> ProductType | None:
        principal = info.context.caller
        product = await repository.readable_product_by_sku(info.context.session, principal, sku)
        return ProductType.from_model(product) if product else None
