from __future__ import annotations

from datetime import date

import strawberry
from strawberry.file_uploads import Upload

from deal_registration.attachments import MAX_ATTACHMENTS_PER_OWNER
from deal_registration.sales.models import ClaimState, RejectReason, ReverseReason
from schema.deal_registration.sales import types  # noqa: F401 - registers the GraphQL enums first
from schema.money import MoneyInput


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
    proofs: list[Upload] | None = strawberry.field(
        default=None,
        description="Several proof files at once (multipart map paths `variables.input.proofs.0`, "
        f"…; at most {MAX_ATTACHMENTS_PER_OWNER}), instead of `proof`: all are stored or none.",
    )
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retrying with the same key returns the first claim."
    )


@strawberry.input
class SaleClaimAttachProofInput:
    id: strawberry.ID
    file: Upload | None = strawberry.field(
        default=None,
        description="A proof file: PDF, PNG or JPEG (multipart request). Give `file` or `files`.",
    )
    files: list[Upload] | None = strawberry.field(
        default=None,
        description="Several proof files at once (multipart map paths `variables.input.files.0`, "
        "…), instead of `file`: all are stored or none, and the claim holds at most "
        f"{MAX_ATTACHMENTS_PER_OWNER} files.",
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key and the same files returns the claim and "
        "stores nothing more (also once the claim has moved on); other files under the key "
        "are IDEMPOTENCY_KEY_REUSED.",
    )


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


@strawberry.input
class SerialsImportInput:
    file: Upload = strawberry.field(
        description="UTF-8 CSV with header serial,sku,shipped_to,region,shipped_at[,status]."
    )
    good_rows_only: bool = strawberry.field(
        default=False,
        description="Import the good rows and report the bad ones (default: all or nothing).",
    )


@strawberry.input(description="Narrow the sale claims list; every filter is optional.")
class SaleClaimFilter:
    states: list[ClaimState] | None = strawberry.field(
        default=None, description="e.g. [UNDER_REVIEW, NEEDS_PROOF] for the review queue."
    )
    partner_id: strawberry.ID | None = None
