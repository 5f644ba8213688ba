from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import strawberry
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry import Info
from strawberry.file_uploads import Upload

from deal_registration.sales import claim_settings, review, serials, submission, transitions
from deal_registration.sales import proof as claim_proof
from deal_registration.sales.errors import (
    SaleClaimErrorCode,
    SaleClaimWarningCode,
    SerialImportErrorCode,
)
from deal_registration.sales.models import RejectReason, ReverseReason, SaleClaim
from deal_registration.sales.policy import SALES, SalesOp
from earnings import coverage
from earnings.coverage import Gap
from infra.errors import DomainError
from infra.money import parse_decimal
from schema.attachments import read_upload
from schema.context import Context
from schema.errors import UserError, user_errors
from schema.money import MoneyInput
from schema.mutations import mutate
from schema.permissions import allowed
from schema.relay import parse_global_id
from schema.sales.types import SaleClaimType, SalesSettingsType


@strawberry.type
class SaleClaimError(UserError):
    code: SaleClaimErrorCode


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


# ---- claims -------------------------------------------------------------------------


@strawberry.input
class SaleClaimCreateInput:
    serials: list[str] = strawberry.field(
        description="Serial numbers sold (case, spaces and dashes do not matter)."
    )
    customer_name: str
    invoice_number: str
    sale_date: date
    amount: MoneyInput
    partner_id: strawberry.ID | None = strawberry.field(
        default=None, description="Your partner organisation (optional; it is the default)."
    )
    proof: Upload | None = strawberry.field(
        default=None, description="An invoice: PDF, PNG or JPEG (multipart request)."
    )
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retrying with the same key returns the first claim."
    )


@strawberry.type(
    description="Something the reviewer should know about a change that was made; it blocks "
    "nothing (the change is done)."
)
class SaleClaimWarning:
    code: SaleClaimWarningCode
    message: str


@strawberry.type
class SaleClaimPayload:
    sale_claim: SaleClaimType | None = None
    user_errors: list[SaleClaimError] = strawberry.field(default_factory=list)
    warnings: list[SaleClaimWarning] = strawberry.field(
        default_factory=list,
        description="Notices about the result, e.g. an approved sale that no program pays on "
        "(NO_PROGRAM_COVERS_SALE: it is credited as revenue but earns the partner nothing).",
    )


def _coverage_warnings(gap: Gap | None) -> list[SaleClaimWarning]:
    if gap is None:
        return []
    return [
        SaleClaimWarning(
            code=SaleClaimWarningCode.NO_PROGRAM_COVERS_SALE,
            message=f"Approved, but this sale earns the partner nothing: {gap.reason()}.",
        )
    ]


def _payload(errors: list[DomainError], claim: SaleClaim | None = None) -> SaleClaimPayload:
    return SaleClaimPayload(
        sale_claim=SaleClaimType.from_model(claim) if claim else None,
        user_errors=user_errors(errors, SaleClaimError, SaleClaimErrorCode),
    )


async def _run(
    ctx: Context, action: Callable[[AsyncSession], Awaitable[SaleClaim]]
) -> SaleClaimPayload:
    outcome = await mutate(ctx, action)
    return _payload(outcome.errors, outcome.result)


def _not_found(field: str = "id") -> SaleClaimPayload:
    return _payload([DomainError(SaleClaimErrorCode.NOT_FOUND, "No such sale claim.", field)])


@strawberry.input
class SaleClaimAttachProofInput:
    id: strawberry.ID
    file: Upload


@strawberry.input
class SaleClaimApproveInput:
    id: strawberry.ID
    note: str = ""


@strawberry.input
class SaleClaimRejectInput:
    id: strawberry.ID
    reason: RejectReason
    note: str = ""


@strawberry.input
class SaleClaimRequestProofInput:
    id: strawberry.ID
    note: str = strawberry.field(default="", description="What is missing (internal).")


@strawberry.input
class SaleClaimReverseInput:
    id: strawberry.ID
    reason: ReverseReason
    note: str = ""


@strawberry.input
class SalesSettingsUpdateInput:
    claim_window_days: int | None = None
    auto_approve_limit: MoneyInput | None = None
    proof_required: bool | None = None
    max_serials_per_claim: int | None = None


@strawberry.type
class SalesSettingsUpdatePayload:
    settings: SalesSettingsType | None = None
    user_errors: list[SaleClaimError] = strawberry.field(default_factory=list)


@strawberry.input
class SerialsImportInput:
    file: Upload = strawberry.field(
        description="UTF-8 CSV with header serial,sku,shipped_to,region,shipped_at[,status]."
    )
    good_rows_only: bool = strawberry.field(
        default=False,
        description="Import the good rows and report the bad ones (default: all or nothing).",
    )


@strawberry.type
class SerialsImportPayload:
    result: SerialImportResult | None = None
    row_errors: list[SerialImportRowError] = strawberry.field(
        default_factory=list, description="Bad rows by line (at most 1000 are listed)."
    )
    user_errors: list[SerialImportError] = strawberry.field(default_factory=list)


def _claim_id(raw: strawberry.ID) -> uuid.UUID | None:
    return parse_global_id(raw, "SaleClaim")


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
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        currency = input.amount.currency.strip().upper()
        try:
            amount = parse_decimal(input.amount.amount, currency)
        except ValueError as exc:
            return _payload(
                [DomainError(SaleClaimErrorCode.INVALID_AMOUNT, f"{exc}.", "amount.amount")]
            )
        partner_id = None
        if input.partner_id is not None:
            partner_id = parse_global_id(input.partner_id, "Partner") or uuid.UUID(int=0)
        proof = None
        if input.proof is not None:
            proof = await read_upload(input.proof, ctx.services.max_upload_bytes)
        storage = ctx.services.storage
        assert storage is not None
        return await _run(
            ctx,
            lambda s: submission.create_claim(
                s, principal, ctx.services.clock, storage, serial_numbers=input.serials,
                customer_name=input.customer_name, invoice_number=input.invoice_number,
                sale_date=input.sale_date, amount_minor=amount, currency=currency,
                partner_id=partner_id, idempotency_key=input.idempotency_key,
                proof_file=proof, max_upload_bytes=ctx.services.max_upload_bytes,
            ),
        )  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.ATTACH_PROOF)],
        description="Attach a proof file (PDF, PNG or JPEG; multipart request) to a claim.",
    )
    async def sale_claim_attach_proof(
        self, info: Info[Context, None], input: SaleClaimAttachProofInput
    ) -> SaleClaimPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        assert ctx.services.storage is not None
        storage = ctx.services.storage
        claim_id = _claim_id(input.id)
        if claim_id is None:
            return _not_found()
        proof = await read_upload(input.file, ctx.services.max_upload_bytes)
        return await _run(
            ctx,
            lambda s: claim_proof.attach_proof(
                s, principal, ctx.services.clock, storage, claim_id=claim_id, proof_file=proof,
                max_upload_bytes=ctx.services.max_upload_bytes,
            ),
        )  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.APPROVE)],
        description="Approve a claim under review.",
    )
    async def sale_claim_approve(
        self, info: Info[Context, None], input: SaleClaimApproveInput
    ) -> SaleClaimPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        claim_id = _claim_id(input.id)
        if claim_id is None:
            return _not_found()

        async def approve(s: AsyncSession) -> tuple[SaleClaim, Gap | None]:
            claim = await review.approve(
                s, principal, ctx.services.clock, claim_id=claim_id, note=input.note
            )
            gap = await coverage.sale_gap(
                s, claim.vendor_id, await transitions.approved_sale(s, claim)
            )
            return claim, gap

        outcome = await mutate(ctx, approve)
        if outcome.result is None:
            return _payload(outcome.errors)
        claim, gap = outcome.result
        payload = _payload([], claim)
        payload.warnings = _coverage_warnings(gap)
        return payload

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.REJECT)],
        description="Reject a claim under review, with a reason.",
    )
    async def sale_claim_reject(
        self, info: Info[Context, None], input: SaleClaimRejectInput
    ) -> SaleClaimPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        claim_id = _claim_id(input.id)
        if claim_id is None:
            return _not_found()
        return await _run(
            ctx,
            lambda s: review.reject(
                s, principal, ctx.services.clock, claim_id=claim_id, reason=input.reason,
                note=input.note,
            ),
        )  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.REQUEST_PROOF)],
        description="Ask the partner for more proof.",
    )
    async def sale_claim_request_proof(
        self, info: Info[Context, None], input: SaleClaimRequestProofInput
    ) -> SaleClaimPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        claim_id = _claim_id(input.id)
        if claim_id is None:
            return _not_found()
        return await _run(
            ctx,
            lambda s: review.request_proof(
                s, principal, ctx.services.clock, claim_id=claim_id, note=input.note
            ),
        )

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.REVERSE)],
        description="Reverse an approved sale (refunded or returned): records SaleReversed.",
    )
    async def sale_claim_reverse(
        self, info: Info[Context, None], input: SaleClaimReverseInput
    ) -> SaleClaimPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        claim_id = _claim_id(input.id)
        if claim_id is None:
            return _not_found()
        return await _run(
            ctx,
            lambda s: review.reverse(
                s, principal, ctx.services.clock, claim_id=claim_id, reason=input.reason,
                note=input.note,
            ),
        )  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.UPDATE_SETTINGS)],
        description="Change your vendor's claim rules; omitted fields keep their value.",
    )
    async def sales_settings_update(
        self, info: Info[Context, None], input: SalesSettingsUpdateInput
    ) -> SalesSettingsUpdatePayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        limit = currency = None
        if input.auto_approve_limit is not None:
            currency = input.auto_approve_limit.currency.strip().upper()
            try:
                limit = parse_decimal(input.auto_approve_limit.amount, currency)
            except ValueError as exc:
                error = DomainError(
                    SaleClaimErrorCode.INVALID_SETTING, f"{exc}.", "auto_approve_limit.amount"
                )
                return SalesSettingsUpdatePayload(
                    user_errors=user_errors([error], SaleClaimError, SaleClaimErrorCode)
                )
        outcome = await mutate(
            ctx,
            lambda s: claim_settings.update_settings(
                s, principal, ctx.services.clock, claim_window_days=input.claim_window_days,
                auto_approve_limit_minor=limit, auto_approve_currency=currency,
                proof_required=input.proof_required,
                max_serials_per_claim=input.max_serials_per_claim,
            ),
        )  # fmt: skip
        if outcome.result is None:
            return SalesSettingsUpdatePayload(
                user_errors=user_errors(outcome.errors, SaleClaimError, SaleClaimErrorCode)
            )
        return SalesSettingsUpdatePayload(settings=SalesSettingsType.from_model(outcome.result))

    @strawberry.mutation(
        permission_classes=[allowed(SALES, SalesOp.IMPORT_SERIALS)],
        description="Import shipped serials from a CSV file (multipart request). Re-importing "
        "a file changes nothing; changed rows are updated; status RETURNED or VOIDED marks "
        "serials. All or nothing unless goodRowsOnly. For large files use the CLI.",
    )
    async def serials_import(
        self, info: Info[Context, None], input: SerialsImportInput
    ) -> SerialsImportPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        upload: Any = input.file
        outcome = await mutate(
            ctx,
            lambda s: serials.import_serials(
                s, principal, ctx.services.clock, source=upload.file,
                filename=str(upload.filename or ""), good_rows_only=input.good_rows_only,
            ),
        )  # fmt: skip
        report = outcome.result
        for error in outcome.errors:
            if isinstance(error, serials.ImportRejected):
                report = error.report
        return SerialsImportPayload(
            result=_import_result(report) if report else None,
            row_errors=[
                SerialImportRowError(line=e.line, code=e.code, message=e.message)
                for e in (report.errors if report else [])
            ],
            user_errors=user_errors(outcome.errors, SerialImportError, SerialImportErrorCode),
        )


def _import_result(report: serials.ImportReport) -> SerialImportResult:
    return SerialImportResult(
        applied=report.applied, rows=report.rows, inserted=report.inserted,
        updated=report.updated, unchanged=report.unchanged, rejected=report.rejected,
    )  # fmt: skip
