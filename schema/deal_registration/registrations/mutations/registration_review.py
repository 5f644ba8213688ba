from __future__ import annotations

import strawberry
from strawberry import Info

from deal_registration.registrations import review
from deal_registration.registrations.policy import DEALS, DealOp
from schema.context import Context
from schema.deal_registration.registrations.inputs import (
    DealRegistrationActionInput,
    DealRegistrationApproveInput,
    DealRegistrationIdInput,
)
from schema.deal_registration.registrations.mutations.payloads import (
    DealRegistrationPayload,
)
from schema.mutations import run
from schema.permissions import allowed


@strawberry.type
class DealRegistrationReviewMutation:
    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.START_REVIEW)],
        description="Take a submitted registration into review (SUBMITTED -> UNDER_REVIEW).",
    )
    async def deal_registration_start_review(
        self, info: Info[Context, None], input: DealRegistrationIdInput
    ) -> DealRegistrationPayload:
        return await run(info, DealRegistrationPayload, lambda m: review.start_review(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"),
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.APPROVE)],
        description="Approve a registration under review. Conflicts are checked again; the "
        "first approval for a customer is protected for the vendor's protection period.",
    )
    async def deal_registration_approve(
        self, info: Info[Context, None], input: DealRegistrationApproveInput
    ) -> DealRegistrationPayload:
        return await run(info, DealRegistrationPayload, lambda m: review.approve(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"), reason=input.reason,
            override_reason=input.override_reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.REJECT)],
        description="Reject a registration under review; the reason is shown to the partner.",
    )
    async def deal_registration_reject(
        self, info: Info[Context, None], input: DealRegistrationActionInput
    ) -> DealRegistrationPayload:
        return await run(info, DealRegistrationPayload, lambda m: review.reject(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"), reason=input.reason,
        ))  # fmt: skip
