from __future__ import annotations

import strawberry
from strawberry import Info

from deal_registration.registrations import outcome
from deal_registration.registrations.policy import DEALS, DealOp
from schema.context import Context
from schema.deal_registration.registrations.inputs import DealRegistrationActionInput
from schema.deal_registration.registrations.mutations.payloads import (
    DealRegistrationPayload,
)
from schema.mutations import run
from schema.permissions import allowed


@strawberry.type
class DealRegistrationOutcomeMutation:
    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.WITHDRAW)],
        description="Withdraw a registration before it is decided.",
    )
    async def deal_registration_withdraw(
        self, info: Info[Context, None], input: DealRegistrationActionInput
    ) -> DealRegistrationPayload:
        return await run(info, DealRegistrationPayload, lambda m: outcome.withdraw(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"), reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.MARK_WON)],
        description="An approved deal was won (records a DealWon event for earnings and contests).",
    )
    async def deal_registration_mark_won(
        self, info: Info[Context, None], input: DealRegistrationActionInput
    ) -> DealRegistrationPayload:
        return await run(info, DealRegistrationPayload, lambda m: outcome.mark_won(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"), reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.MARK_LOST)],
        description="An approved deal was lost.",
    )
    async def deal_registration_mark_lost(
        self, info: Info[Context, None], input: DealRegistrationActionInput
    ) -> DealRegistrationPayload:
        return await run(info, DealRegistrationPayload, lambda m: outcome.mark_lost(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"), reason=input.reason,
        ))  # fmt: skip
