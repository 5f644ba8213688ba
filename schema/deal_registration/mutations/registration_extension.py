from __future__ import annotations

import strawberry
from strawberry import Info

from deal_registration.registrations import extensions
from deal_registration.registrations.policy import DEALS, DealOp
from schema.context import Context
from schema.deal_registration.inputs import (
    DealRegistrationActionInput,
    DealRegistrationExtensionDecideInput,
)
from schema.deal_registration.mutations.payloads import (
    DealRegistrationPayload,
    run_on_registration,
)
from schema.permissions import allowed


@strawberry.type
class DealRegistrationExtensionMutation:
    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.REQUEST_EXTENSION)],
        description="Ask for an approved registration's protection to be extended.",
    )
    async def deal_registration_extension_request(
        self, info: Info[Context, None], input: DealRegistrationActionInput
    ) -> DealRegistrationPayload:
        clock = info.context.services.clock
        return await run_on_registration(
            info,
            input.id,
            lambda s, p, rid: extensions.request_extension(
                s, p, clock, registration_id=rid, reason=input.reason
            ),
        )

    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.DECIDE_EXTENSION)],
        description="Grant or refuse the pending extension request.",
    )
    async def deal_registration_extension_decide(
        self, info: Info[Context, None], input: DealRegistrationExtensionDecideInput
    ) -> DealRegistrationPayload:
        clock = info.context.services.clock
        return await run_on_registration(
            info,
            input.id,
            lambda s, p, rid: extensions.decide_extension(
                s, p, clock, registration_id=rid, grant=input.grant, reason=input.reason
            ),
        )
