from __future__ import annotations

import strawberry
from strawberry import Info

from deal_registration.registrations import submission
from deal_registration.registrations.errors import DealRegistrationErrorCode as Code
from deal_registration.registrations.policy import DEALS, DealOp
from infra.errors import DomainError
from schema.attachments import read_upload
from schema.context import Context
from schema.deal_registration.inputs import DealRegistrationIdInput, DealRegistrationSubmitInput
from schema.deal_registration.mutations.payloads import (
    DealRegistrationPayload,
    errors_payload,
    run_on_registration,
)
from schema.deal_registration.types import DealRegistrationType
from schema.mutations import mutate
from schema.permissions import allowed
from schema.relay import parse_global_id


@strawberry.type
class DealRegistrationSubmitMutation:
    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.SUBMIT)],
        description="Register a deal: it is checked for conflicts with every active "
        "registration of the vendor and waits for review (or is saved as a draft).",
    )
    async def deal_registration_submit(
        self, info: Info[Context, None], input: DealRegistrationSubmitInput
    ) -> DealRegistrationPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        try:
            value = input.estimated_value.to_minor()
        except ValueError as exc:
            return errors_payload(
                [DomainError(Code.INVALID_VALUE, f"Not a valid amount: {exc}.", "estimated_value")]
            )
        partner_id = None
        if input.partner_id is not None:
            partner_id = parse_global_id(input.partner_id, "Partner")
            if partner_id is None:
                code = Code.PARTNER_NOT_ALLOWED if principal.is_partner else Code.NOT_FOUND
                return errors_payload([DomainError(code, "No such partner.", "partner_id")])
        contact = input.contact
        data = submission.RegistrationInput(
            customer_name=input.customer.name,
            customer_domain=input.customer.domain,
            customer_country=input.customer.country,
            customer_region=input.customer.region,
            contact_name=contact.name if contact else "",
            contact_email=contact.email if contact else "",
            estimated_value_minor=value,
            currency=input.estimated_value.currency,
            expected_close_date=input.expected_close_date,
            notes=input.notes,
            lines=[submission.LineInput(sku=li.sku, quantity=li.quantity) for li in input.lines],
            partner_id=partner_id,
        )
        proof = None
        if input.proof is not None:
            proof = await read_upload(input.proof, ctx.services.max_upload_bytes)
        outcome = await mutate(
            ctx,
            lambda s: submission.submit_registration(
                s, principal, ctx.services.clock, data=data, draft=input.as_draft,
                idempotency_key=input.idempotency_key, proof_file=proof,
                storage=ctx.services.storage, max_upload_bytes=ctx.services.max_upload_bytes,
            ),
        )  # fmt: skip
        if outcome.result is None:
            return errors_payload(outcome.errors)
        return DealRegistrationPayload(
            deal_registration=DealRegistrationType.from_model(
                outcome.result, ctx.services.clock.now()
            )
        )

    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.SUBMIT_DRAFT)], description="Submit a draft."
    )
    async def deal_registration_submit_draft(
        self, info: Info[Context, None], input: DealRegistrationIdInput
    ) -> DealRegistrationPayload:
        clock = info.context.services.clock
        return await run_on_registration(
            info,
            input.id,
            lambda s, p, rid: submission.submit_draft(s, p, clock, registration_id=rid),
        )
