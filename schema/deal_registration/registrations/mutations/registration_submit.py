from __future__ import annotations

import strawberry
from strawberry import Info

from deal_registration.registrations import submission
from deal_registration.registrations.models import DealRegistration
from deal_registration.registrations.policy import DEALS, DealOp
from schema.context import Context
from schema.deal_registration.registrations.inputs import (
    DealRegistrationIdInput,
    DealRegistrationSubmitInput,
)
from schema.deal_registration.registrations.mutations.payloads import (
    DealRegistrationPayload,
)
from schema.mutations import Write, run, uploads
from schema.permissions import allowed


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
        proofs = await uploads(
            info, ("proof", input.proof), ("proofs", input.proofs), required=False
        )

        async def submit(m: Write) -> DealRegistration:
            value = m.money(input.estimated_value, "estimated_value")
            customer, contact = input.customer, input.contact
            data = submission.RegistrationInput(
                customer_name=customer.name, customer_domain=customer.domain,
                customer_country=customer.country, customer_region=customer.region,
                contact_name=contact.name if contact else "",
                contact_email=contact.email if contact else "",
                estimated_value_minor=value.minor, currency=value.currency,
                expected_close_date=input.expected_close_date, notes=input.notes,
                lines=[
                    submission.LineInput(sku=li.sku, quantity=li.quantity) for li in input.lines
                ],
                partner_id=m.optional_id(input.partner_id, "Partner"),
            )  # fmt: skip
            return await submission.submit_registration(
                m.session, m.principal, m.clock, data=data, draft=input.as_draft,
                idempotency_key=input.idempotency_key, key_retention=m.key_retention,
                proof_files=proofs.chosen(), storage=m.services.storage,
                max_upload_bytes=m.max_upload_bytes,
            )  # fmt: skip

        return await run(info, DealRegistrationPayload, submit)

    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.SUBMIT_DRAFT)], description="Submit a draft."
    )
    async def deal_registration_submit_draft(
        self, info: Info[Context, None], input: DealRegistrationIdInput
    ) -> DealRegistrationPayload:
        return await run(info, DealRegistrationPayload, lambda m: submission.submit_draft(
            m.session, m.principal, m.clock,
            registration_id=m.id(input.id, "DealRegistration"),
        ))  # fmt: skip
