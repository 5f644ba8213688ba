from __future__ import annotations

import strawberry
from strawberry import Info

from deal_registration.registrations import extensions
from deal_registration.registrations.policy import DEALS, DealOp
from schema.context import Context
from schema.deal_registration.registrations.inputs import (
    DealRegistrationActionInput,
    DealRegistrationExtensionDecideInput,
)
from schema.deal_registration.registrations.mutations.payloads import (
    DealRegistrationPayload,
)
from schema.mutations import run
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
        return await run(info, DealRegistrationPayload, lambda m: extensions.request_extension(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"), reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.DECIDE_EXTENSION)],
        description="Grant or refuse the pending extension request.",
    )
    async def deal_registration_extension_decide(
        self, info: Info[Context, None], input: DealRegistrationExtensionDecideInput
    ) -> DealRegistrationPayload:
        return await run(info, DealRegistrationPayload, lambda m: extensions.decide_extension(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"), grant=input.grant,
            reason=input.reason,
        ))  # fmt: skip
