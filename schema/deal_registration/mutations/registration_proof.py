from __future__ import annotations

import strawberry
from strawberry import Info
from strawberry.file_uploads import Upload

from deal_registration.registrations import proof
from deal_registration.registrations.errors import DealRegistrationErrorCode
from deal_registration.registrations.policy import DEALS, DealOp
from schema.attachments import AttachmentType, read_upload
from schema.context import Context
from schema.deal_registration.mutations.payloads import DealRegistrationError, not_found
from schema.deal_registration.types import DealRegistrationType
from schema.errors import user_errors
from schema.mutations import mutate
from schema.permissions import allowed
from schema.relay import parse_global_id


@strawberry.input
class DealRegistrationAttachProofInput:
    id: strawberry.ID
    file: Upload = strawberry.field(
        description="An invoice: PDF, PNG or JPEG (multipart request; judged by content)."
    )


@strawberry.type
class DealRegistrationAttachProofPayload:
    deal_registration: DealRegistrationType | None = None
    attachment: AttachmentType | None = strawberry.field(
        default=None, description="The file just attached."
    )
    user_errors: list[DealRegistrationError] = strawberry.field(default_factory=list)


@strawberry.type
class DealRegistrationProofMutation:
    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.ATTACH_PROOF)],
        description="Attach a proof file (an invoice; multipart request) to a registration "
        "that is not withdrawn, rejected, lost or expired.",
    )
    async def deal_registration_attach_proof(
        self, info: Info[Context, None], input: DealRegistrationAttachProofInput
    ) -> DealRegistrationAttachProofPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        storage = ctx.services.storage
        assert storage is not None
        registration_id = parse_global_id(input.id, "DealRegistration")
        if registration_id is None:
            return DealRegistrationAttachProofPayload(user_errors=not_found().user_errors)
        file = await read_upload(input.file, ctx.services.max_upload_bytes)
        outcome = await mutate(
            ctx,
            lambda s: proof.attach_proof(
                s, principal, ctx.services.clock, storage, registration_id=registration_id,
                proof_file=file, max_upload_bytes=ctx.services.max_upload_bytes,
            ),
        )  # fmt: skip
        if outcome.result is None:
            return DealRegistrationAttachProofPayload(
                user_errors=user_errors(
                    outcome.errors, DealRegistrationError, DealRegistrationErrorCode
                )
            )
        registration, attachment = outcome.result
        return DealRegistrationAttachProofPayload(
            deal_registration=DealRegistrationType.from_model(
                registration, ctx.services.clock.now()
            ),
            attachment=AttachmentType.from_model(attachment),
        )
