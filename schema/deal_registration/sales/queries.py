from __future__ import annotations

from datetime import date

import strawberry
from strawberry import Info

from deal_registration.sales import lookup, repository
from deal_registration.sales.policy import SALES, SalesOp
from schema.context import Context
from schema.deal_registration.sales.inputs import SaleClaimFilter
from schema.deal_registration.sales.types import (
    SaleClaimType,
    SaleEventType,
    SalesSettingsType,
    SerialCheckType,
)
from schema.permissions import IsAuthenticated, allowed
from schema.relay import Connection, paginate, parse_global_id, row_id


@strawberry.type
class SalesQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Sale claims you may see: the vendor's for admins and finance, assigned "
        "partners' for channel managers, your organisation's for partner admins, your own for "
        "partner reps. Oldest first.",
    )
    async def sale_claims(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: SaleClaimFilter | None = None,
    ) -> Connection[SaleClaimType] | None:
        principal = info.context.caller
        f = filter or SaleClaimFilter()
        stmt = repository.claims_matching(
            principal, states=f.states or (),
            partner_id=None if f.partner_id is None else row_id(f.partner_id, "Partner"),
        )  # fmt: skip
        return await paginate(
            info.context, stmt, first=first, after=after,
            to_node=SaleClaimType.from_model,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A sale claim by id; null when it does not exist or you may not see it.",
    )
    async def sale_claim(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> SaleClaimType | None:
        principal = info.context.caller
        claim_id = parse_global_id(id, "SaleClaim")
        if claim_id is None:
            return None
        claim = await repository.get_readable_claim(info.context.session, principal, claim_id)
        return SaleClaimType.from_model(claim) if claim else None

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Check a serial before claiming it: the outcome a claim would get now "
        "(give saleDate to include the date rules).",
    )
    async def serial_lookup(
        self, info: Info[Context, None], serial: str, sale_date: date | None = None
    ) -> SerialCheckType:
        ctx = info.context
        check = await lookup.lookup_serial(
            ctx.session, ctx.caller, ctx.services.clock, serial=serial[:200],
            sale_date=sale_date,
        )  # fmt: skip
        return SerialCheckType(
            serial=check.serial, outcome=check.outcome,
            sku=check.found.sku if check.found else None, _record=check.found,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[allowed(SALES, SalesOp.READ_SETTINGS)],
        description="Your vendor's rules for sale claims.",
    )
    async def sales_settings(self, info: Info[Context, None]) -> SalesSettingsType | None:
        principal = info.context.caller
        settings = await repository.get_settings(info.context.session, principal.vendor_id)
        return SalesSettingsType.from_model(settings)

    @strawberry.field(
        permission_classes=[allowed(SALES, SalesOp.READ_SALE_EVENTS)],
        description="SaleApproved and SaleReversed events, oldest first (what earnings and "
        "contests credit).",
    )
    async def sale_events(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[SaleEventType] | None:
        principal = info.context.caller
        return await paginate(
            info.context, repository.readable_sale_events(principal),
            first=first, after=after, to_node=SaleEventType.from_model,
        )  # fmt: skip
