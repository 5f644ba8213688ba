from __future__ import annotations

import strawberry
from strawberry import Info

from deal_registration.registrations import service
from schema.context import Context
from schema.deal_registration.inputs import DealRegistrationActionInput
from schema.deal_registration.mutations.payloads import DealRegistrationPayload
from schema.mutations import run
from schema.permissions import PartnersAndReviewers, PartnerUsers


@strawberry.type
class DealRegistrationOutcomeMutation:
    @strawberry.mutation(
        permission_classes=[PartnerUsers],
        description="Withdraw a registration before it is decided.",
    )
    async def deal_registration_withdraw(
        self, info: Info[Context, None], input: DealRegistrationActionInput
    ) -> DealRegistrationPayload:
        return await run(info, DealRegistrationPayload, lambda m: service.withdraw(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"), reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[PartnersAndReviewers],
        description="An approved deal was won (records a DealWon event for earnings and contests).",
    )
    async def deal_registration_mark_won(
        self, info: Info[Context, None], input: DealRegistrationActionInput
    ) -> DealRegistrationPayload:
        return await run(info, DealRegistrationPayload, lambda m: service.mark_won(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"), reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[PartnersAndReviewers], description="An approved deal was lost."
    )
    async def deal_registration_mark_lost(
        self, info: Info[Context, None], input: DealRegistrationActionInput
    ) -> DealRegistrationPayload:
        return await run(info, DealRegistrationPayload, lambda m: service.mark_lost(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"), reason=input.reason,
        ))  # fmt: skip
