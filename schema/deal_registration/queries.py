from __future__ import annotations

from datetime import timedelta

import strawberry
from graphql import GraphQLError
from sqlalchemy import false, not_, or_
from sqlmodel import col
from strawberry import Info

from deal_registration.registrations import repository
from deal_registration.registrations.models import DealRegistration
from schema.context import Context
from schema.deal_registration.inputs import DealRegistrationFilter
from schema.deal_registration.types import DealProgramSettingsType, DealRegistrationType
from schema.permissions import IsAuthenticated, VendorStaff
from schema.relay import Connection, paginate, parse_global_id

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
        stmt = repository.readable_registrations(principal)
        if filter is not None:
            if filter.status:
                stmt = stmt.where(or_(*(repository.has_status(s, now) for s in filter.status)))
            if filter.partner_id is not None:
                partner_id = parse_global_id(filter.partner_id, "Partner")
                stmt = stmt.where(
                    DealRegistration.partner_id == partner_id if partner_id else false()
                )
            if filter.customer:
                pattern = f"%{filter.customer.strip()}%"
                stmt = stmt.where(
                    or_(
                        col(DealRegistration.customer_name).ilike(pattern),
                        col(DealRegistration.customer_domain).ilike(pattern),
                    )
                )
            if filter.expiring_within_days is not None:
                days = filter.expiring_within_days
                if not 0 <= days <= MAX_EXPIRING_WITHIN_DAYS:
                    raise GraphQLError(
                        f"'expiringWithinDays' is between 0 and {MAX_EXPIRING_WITHIN_DAYS}.",
                        extensions={"code": "BAD_USER_INPUT"},
                    )
                stmt = stmt.where(
                    repository.is_live_approval(now),
                    col(DealRegistration.expires_at) <= now + timedelta(days=days),
                )
            if filter.conflicted is not None:
                conflicted = repository.is_conflicted(principal)
                stmt = stmt.where(conflicted if filter.conflicted else not_(conflicted))
            if filter.overdue is not None:
                overdue = repository.is_overdue(now)
                stmt = stmt.where(overdue if filter.overdue else not_(overdue))
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
        permission_classes=[VendorStaff],
        description="Your vendor's deal registration rules (defaults until changed).",
    )
    async def deal_program_settings(
        self, info: Info[Context, None]
    ) -> DealProgramSettingsType | None:
        principal = info.context.caller
        found = await repository.program_settings(info.context.session, principal.vendor_id)
        return DealProgramSettingsType.from_model(found)
