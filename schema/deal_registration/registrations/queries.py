from __future__ import annotations

from datetime import timedelta

import strawberry
from graphql import GraphQLError
from strawberry import Info

from deal_registration.registrations import repository
from deal_registration.registrations.policy import DEALS, DealOp
from infra.errors import DomainError
from schema.context import Context
from schema.deal_registration.registrations.inputs import DealRegistrationFilter
from schema.deal_registration.registrations.types import (
    DealProgramSettingsType,
    DealRegistrationType,
)
from schema.errors import query_error
from schema.permissions import IsAuthenticated, allowed
from schema.relay import Connection, paginate, parse_global_id, row_id

MAX_EXPIRING_WITHIN_DAYS = 3650


@strawberry.type
class DealRegistrationQuery:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Deal registrations you may see: a rep its own, a partner admin its "
        "organisation's, a channel manager its assigned partners', vendor admins and finance "
        "all of the vendor's.",
    )
    async def deals(
        self,
        info: Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: DealRegistrationFilter | None = None,
    ) -> Connection[DealRegistrationType] | None:
        principal = info.context.caller
        now = info.context.services.clock.now()
        f = filter or DealRegistrationFilter()
        days = f.expiring_within_days
        if days is not None and not 0 <= days <= MAX_EXPIRING_WITHIN_DAYS:
            raise GraphQLError(
                f"'expiringWithinDays' is between 0 and {MAX_EXPIRING_WITHIN_DAYS}.",
                extensions={"code": "BAD_USER_INPUT"},
            )
        try:
            stmt = repository.registrations_matching(
                principal, now, statuses=f.status or (), customer=f.customer,
                partner_id=None if f.partner_id is None else row_id(f.partner_id, "Partner"),
                expiring_within=None if days is None else timedelta(days=days),
                conflicted=f.conflicted, overdue=f.overdue,
            )  # fmt: skip
        except DomainError as error:
            raise query_error(error) from error
        return await paginate(
            info.context, stmt, first=first, after=after,
            to_node=lambda r: DealRegistrationType.from_model(r, now),
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="A deal registration by id; null when it does not exist or you may not see it.",
    )
    async def deal(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> DealRegistrationType | None:
        principal = info.context.caller
        registration_id = parse_global_id(id, "DealRegistration")
        if registration_id is None:
            return None
        found = await repository.get_readable(info.context.session, principal, registration_id)
        if found is None:
            return None
        return DealRegistrationType.from_model(found, info.context.services.clock.now())

    @strawberry.field(
        permission_classes=[allowed(DEALS, DealOp.READ_SETTINGS)],
        description="Your vendor's deal registration rules (defaults until changed).",
    )
    async def deal_program_settings(
        self, info: Info[Context, None]
    ) -> DealProgramSettingsType | None:
        principal = info.context.caller
        found = await repository.program_settings(info.context.session, principal.vendor_id)
        return DealProgramSettingsType.from_model(found)
