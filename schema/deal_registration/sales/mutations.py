from __future__ import annotations

from typing import Any, ClassVar, Self

import strawberry
from strawberry import Info

from deal_registration.sales import claim_settings, review, serials, submission, transitions
from deal_registration.sales import proof as claim_proof
from deal_registration.sales.errors import (
    SaleClaimErrorCode,
    SaleClaimWarningCode,
    SerialImportErrorCode,
)
from deal_registration.sales.models import SaleClaim, SalesSettings
from deal_registration.sales.policy import SALES, SalesOp
from earnings import coverage
from earnings.coverage import Gap
from infra.errors import DomainError
from schema.attachments import upload_source
from schema.context import Context
from schema.deal_registration.sales.inputs import (
    SaleClaimApproveInput,
    SaleClaimAttachProofInput,
    SaleClaimCreateInput,
    SaleClaimRejectInput,
    SaleClaimRequestProofInput,
    SaleClaimReverseInput,
    SalesSettingsUpdateInput,
    SerialsImportInput,
)
from schema.deal_registration.sales.types import SaleClaimType, SalesSettingsType
from schema.errors import UserError
from schema.mutations import Payload, Write, run, uploads
from schema.permissions import allowed


@strawberry.type
class SaleClaimError(UserError):
    code: SaleClaimErrorCode
    amount_code: ClassVar = SaleClaimErrorCode.INVALID_AMOUNT


@strawberry.type
class SerialImportError(UserError):
    code: SerialImportErrorCode


@strawberry.type(description="A bad row of an import file.")
class SerialImportRowError:
    line: int = strawberry.field(description="1-based line number in the file.")
    code: SerialImportErrorCode
    message: str


@strawberry.type(description="What an import did (or, when refused, would have found).")
class SerialImportResult:
    applied: bool = strawberry.field(description="False when nothing was written.")
    rows: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int


@strawberry.type(
    description="Something the reviewer should know about a change that was made; it blocks "
    "nothing (the change is done)."
)
class SaleClaimWarning:
    code: SaleClaimWarningCode
    message: str


@strawberry.type
class SaleClaimPayload(Payload[SaleClaim | tuple[SaleClaim, Gap | None]], errors=SaleClaimError):
    sale_claim: SaleClaimType | None = None
    user_errors: list[SaleClaimError] = strawberry.field(default_factory=list)
    warnings: list[SaleClaimWarning] = strawberry.field(
        default_factory=list,
        description="Notices about the result, e.g. an approved sale that no program pays on "
        "(NO_PROGRAM_COVERS_SALE: it is credited as revenue but earns the partner nothing).",
    )

    @classmethod
    def of(cls, result: SaleClaim | tuple[SaleClaim, Gap | None], write: Write) -> Self:
        """A claim, or an approved claim with what of it no program covers."""
        claim, gap = result if isinstance(result, tuple) else (result, None)
        warnings = [] if gap is None else [SaleClaimWarning(
            code=SaleClaimWarningCode.NO_PROGRAM_COVERS_SALE,
            message=f"Approved, but this sale earns the partner nothing: {gap.reason()}.",
        )]  # fmt: skip
        return cls(sale_claim=SaleClaimType.from_model(claim), warnings=warnings)


@strawberry.type
class SalesSettingsUpdatePayload(Payload[SalesSettings], errors=SaleClaimError):
    settings: SalesSettingsType | None = None
    user_errors: list[SaleClaimError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: SalesSettings, write: Write) -> Self:
        return cls(settings=SalesSettingsType.from_model(result))


@strawberry.type
class SerialsImportPayload(Payload[serials.ImportReport], errors=SerialImportError):
    result: SerialImportResult | None = None
    row_errors: list[SerialImportRowError] = strawberry.field(
        default_factory=list, description="Bad rows by line (at most 1000 are listed)."
    )
    user_errors: list[SerialImportError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: serials.ImportReport, write: Write) -> Self:
        return cls.reporting(result)

    @classmethod
    def failed(cls, errors: list[DomainError]) -> Self:
        """A refused import still reports what it found (ImportRejected carries it)."""
        reports = [e.report for e in errors if isinstance(e, serials.ImportRejected)]
        payload = cls.reporting(reports[0]) if reports else cls()
        payload.user_errors = super().failed(errors).user_errors
        return payload

    @classmethod
    def reporting(cls, report: serials.ImportReport) -> Self:
        return cls(
            result=SerialImportResult(
                applied=report.applied, rows=report.rows, inserted=report.inserted,
                updated=report.updated, unchanged=report.unchanged, rejected=report.rejected,
            ),
            row_errors=[
                SerialImportRowError(line=e.line, code=e.code, message=e.message)
                for e in report.errors
            ],
        )  # fmt: skip


@strawberry.type
class SalesMutation:
    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.CREATE_CLAIM)],
        description="Claim a sale by its serial numbers. Each serial is judged at once; the "
        "claim is AUTO_APPROVED, NEEDS_PROOF, UNDER_REVIEW or REJECTED accordingly.",
    )
    async def sale_claim_create(
        self, info: Info[Context, None], input: SaleClaimCreateInput
    ) -> SaleClaimPayload:
        proofs = await uploads(
            info, ("proof", input.proof), ("proofs", input.proofs), required=False
        )

        async def create(m: Write) -> SaleClaim:
            amount = m.money(input.amount, "amount")
            return await submission.create_claim(
                m.session, m.principal, m.clock, m.storage, serial_numbers=input.serials,
                customer_name=input.customer_name, invoice_number=input.invoice_number,
                sale_date=input.sale_date, amount_minor=amount.minor, currency=amount.currency,
                partner_id=m.optional_id(input.partner_id, "Partner"),
                idempotency_key=input.idempotency_key, key_retention=m.key_retention,
                proof_files=proofs.chosen(), max_upload_bytes=m.max_upload_bytes,
            )  # fmt: skip

        return await run(info, SaleClaimPayload, create)

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.ATTACH_PROOF)],
        description="Attach proof files (PDF, PNG or JPEG; multipart request) to a claim: one "
        "in `file` or several in `files`, all stored or none.",
    )
    async def sale_claim_attach_proof(
        self, info: Info[Context, None], input: SaleClaimAttachProofInput
    ) -> SaleClaimPayload:
        files = await uploads(info, ("file", input.file), ("files", input.files), required=True)
        return await run(info, SaleClaimPayload, lambda m: claim_proof.attach_proof(
            m.session, m.principal, m.clock, m.storage, claim_id=m.id(input.id, "SaleClaim"),
            proof_files=files.chosen(), max_upload_bytes=m.max_upload_bytes,
            idempotency_key=input.idempotency_key, key_retention=m.key_retention,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.APPROVE)],
        description="Approve a claim under review.",
    )
    async def sale_claim_approve(
        self, info: Info[Context, None], input: SaleClaimApproveInput
    ) -> SaleClaimPayload:
        async def approve(m: Write) -> tuple[SaleClaim, Gap | None]:
            claim = await review.approve(
                m.session, m.principal, m.clock, claim_id=m.id(input.id, "SaleClaim"),
                note=input.note,
            )  # fmt: skip
            sale = await transitions.approved_sale(m.session, claim)
            return claim, await coverage.sale_gap(m.session, claim.vendor_id, sale)

        return await run(info, SaleClaimPayload, approve)

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.REJECT)],
        description="Reject a claim under review, with a reason.",
    )
    async def sale_claim_reject(
        self, info: Info[Context, None], input: SaleClaimRejectInput
    ) -> SaleClaimPayload:
        return await run(info, SaleClaimPayload, lambda m: review.reject(
            m.session, m.principal, m.clock, claim_id=m.id(input.id, "SaleClaim"),
            reason=input.reason, note=input.note,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.REQUEST_PROOF)],
        description="Ask the partner for more proof.",
    )
    async def sale_claim_request_proof(
        self, info: Info[Context, None], input: SaleClaimRequestProofInput
    ) -> SaleClaimPayload:
        return await run(info, SaleClaimPayload, lambda m: review.request_proof(
            m.session, m.principal, m.clock, claim_id=m.id(input.id, "SaleClaim"),
            note=input.note,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.REVERSE)],
        description="Reverse an approved sale (refunded or returned): records SaleReversed.",
    )
    async def sale_claim_reverse(
        self, info: Info[Context, None], input: SaleClaimReverseInput
    ) -> SaleClaimPayload:
        return await run(info, SaleClaimPayload, lambda m: review.reverse(
            m.session, m.principal, m.clock, claim_id=m.id(input.id, "SaleClaim"),
            reason=input.reason, note=input.note,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.UPDATE_SETTINGS)],
        description="Change your vendor's claim rules; omitted fields keep their value.",
    )
    async def sales_settings_update(
        self, info: Info[Context, None], input: SalesSettingsUpdateInput
    ) -> SalesSettingsUpdatePayload:
        async def update(m: Write) -> SalesSettings:
            limit = m.optional_money(input.auto_approve_limit, "auto_approve_limit")
            return await claim_settings.update_settings(
                m.session, m.principal, m.clock, claim_window_days=input.claim_window_days,
                auto_approve_limit_minor=limit.minor if limit else None,
                auto_approve_currency=limit.currency if limit else None,
                proof_required=input.proof_required,
                max_serials_per_claim=input.max_serials_per_claim,
            )  # fmt: skip

        return await run(info, SalesSettingsUpdatePayload, update)

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.IMPORT_SERIALS)],
        description="Import shipped serials from a CSV file (multipart request). Re-importing "
        "a file changes nothing; changed rows are updated; status RETURNED or VOIDED marks "
        "serials. All or nothing unless goodRowsOnly. For large files use the CLI.",
    )
    async def serials_import(
        self, info: Info[Context, None], input: SerialsImportInput
    ) -> SerialsImportPayload:
        file: Any = input.file
        return await run(info, SerialsImportPayload, lambda m: serials.import_serials(
            m.session, m.principal, m.clock, source=upload_source(file),
            filename=str(file.filename or ""), good_rows_only=input.good_rows_only,
        ))  # fmt: skip
