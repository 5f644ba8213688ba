from __future__ import annotations

from typing import Self

import strawberry
from strawberry import Info

from deal_registration.attachments import Attachment
from deal_registration.registrations import proof
from deal_registration.registrations.models import DealRegistration
from deal_registration.registrations.policy import DEALS, DealOp
from schema.attachments import AttachmentType
from schema.context import Context
from schema.deal_registration.registrations.inputs import DealRegistrationAttachProofInput
from schema.deal_registration.registrations.mutations.payloads import DealRegistrationError
from schema.deal_registration.registrations.types import DealRegistrationType
from schema.mutations import Payload, Write, run, uploads
from schema.permissions import allowed


@strawberry.type
class DealRegistrationAttachProofPayload(
    Payload[tuple[DealRegistration, list[Attachment]]], errors=DealRegistrationError
):
    deal_registration: DealRegistrationType | None = None
    attachment: AttachmentType | None = strawberry.field(
        default=None, description="The file just attached (the first, when `files` sent several)."
    )
    attachments: list[AttachmentType] | None = strawberry.field(
        default=None, description="The files just attached, in the order sent."
    )
    user_errors: list[DealRegistrationError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: tuple[DealRegistration, list[Attachment]], write: Write) -> Self:
        registration, stored = result
        attached = [AttachmentType.from_model(a) for a in stored]
        return cls(
            deal_registration=DealRegistrationType.from_model(registration, write.clock.now()),
            attachment=attached[0],
            attachments=attached,
        )


@strawberry.type
class DealRegistrationProofMutation:
    @strawberry.mutation(
        permission_classes=[allowed(DEALS, DealOp.ATTACH_PROOF)],
        description="Attach proof files (invoices; multipart request: one in `file` or several "
        "in `files`, all stored or none) to a registration that is not withdrawn, rejected, "
        "lost or expired.",
    )
    async def deal_registration_attach_proof(
        self, info: Info[Context, None], input: DealRegistrationAttachProofInput
    ) -> DealRegistrationAttachProofPayload:
        files = await uploads(info, ("file", input.file), ("files", input.files), required=True)
        return await run(info, DealRegistrationAttachProofPayload, lambda m: proof.attach_proof(
            m.session, m.principal, m.clock, m.storage,
            registration_id=m.id(input.id, "DealRegistration"), proof_files=files.chosen(),
            max_upload_bytes=m.max_upload_bytes, idempotency_key=input.idempotency_key,
            key_retention=m.key_retention,
        ))  # fmt: skip
