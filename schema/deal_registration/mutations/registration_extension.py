from __future__ import annotations

import strawberry
from strawberry import Info

from deal_registration.registrations import service
from schema.context import Context
from schema.deal_registration.inputs import (
    DealRegistrationActionInput,
    DealRegistrationExtensionDecideInput,
)
from schema.deal_registration.mutations.payloads import DealRegistrationPayload
from schema.mutations import run
from schema.permissions import PartnerUsers, Reviewers


@strawberry.type
class DealRegistrationExtensionMutation:
    @strawberry.mutation(
        permission_classes=[PartnerUsers],
        description="Ask for an approved registration's protection to be extended.",
    )
    async def deal_registration_extension_request(
        self, info: Info[Context, None], input: DealRegistrationActionInput
    ) -> DealRegistrationPayload:
        return await run(info, DealRegistrationPayload, lambda m: service.request_extension(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"), reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[Reviewers],
        description="Grant or refuse the pending extension request.",
    )
    async def deal_registration_extension_decide(
        self, info: Info[Context, None], input: DealRegistrationExtensionDecideInput
    ) -> DealRegistrationPayload:
        return await run(info, DealRegistrationPayload, lambda m: service.decide_extension(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"), grant=input.grant,
            reason=input.reason,
        ))  # fmt: skip
