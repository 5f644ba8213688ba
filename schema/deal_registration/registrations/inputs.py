from __future__ import annotations

from datetime import date

import strawberry
from strawberry.file_uploads import Upload

from deal_registration.attachments import MAX_ATTACHMENTS_PER_OWNER
from deal_registration.registrations.models import DealStatus
from schema.deal_registration.registrations import types  # noqa: F401 - registers the GraphQL enums first
from schema.money import MoneyInput


@strawberry.input(description="A product in the deal.")
class DealLineInput:
    sku: str
    quantity: int = 1


@strawberry.input(description="The end customer.")
class DealCustomerInput:
    name: str = strawberry.field(description="Company name, up to 200 characters.")
    domain: str = strawberry.field(
        description="Web domain, URL or e-mail address; subdomains fold to the registrable "
        "domain (shop.acme.co.uk -> acme.co.uk)."
    )
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 code, e.g. 'DE'.")
    region: str = ""


@strawberry.input(description="The customer's contact; required for big deals.")
class DealContactInput:
    name: str = ""
    email: str = ""


@strawberry.input
class DealRegistrationSubmitInput:
    customer: DealCustomerInput
    estimated_value: MoneyInput
    expected_close_date: date
    lines: list[DealLineInput]
    contact: DealContactInput | None = None
    notes: str = ""
    partner_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Vendor staff registering on a partner's behalf name the partner; partner "
        "users register for their own organisation.",
    )
    as_draft: bool = strawberry.field(
        default=False, description="Save as a DRAFT to submit later instead of submitting now."
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key returns the first registration unchanged.",
    )
    proof: Upload | None = strawberry.field(
        default=None,
        description="An invoice: PDF, PNG or JPEG (multipart request; judged by content).",
    )
    proofs: list[Upload] | None = strawberry.field(
        default=None,
        description="Several proof files at once (multipart map paths `variables.input.proofs.0`, "
        f"…; at most {MAX_ATTACHMENTS_PER_OWNER}), instead of `proof`: all are stored or none.",
    )


@strawberry.input
class DealRegistrationActionInput:
    id: strawberry.ID
    reason: str = ""


@strawberry.input
class DealRegistrationApproveInput:
    id: strawberry.ID
    reason: str = ""
    override_reason: str = strawberry.field(
        default="",
        description="Required when another registration protects a conflicting customer; "
        "the approval then grants no protection.",
    )


@strawberry.input
class DealRegistrationExtensionDecideInput:
    id: strawberry.ID
    grant: bool
    reason: str = strawberry.field(default="", description="Required when refusing.")


@strawberry.input
class DealProgramSettingsUpdateInput:
    big_deal_threshold: MoneyInput | None = None
    similarity_threshold: int | None = None
    protection_days: int | None = None
    extension_days: int | None = None
    max_extensions: int | None = None
    review_sla_days: int | None = None


@strawberry.input(description="Narrow the deals list; every filter is optional.")
class DealRegistrationFilter:
    status: list[DealStatus] | None = None
    partner_id: strawberry.ID | None = None
    customer: str | None = strawberry.field(
        default=None,
        description="Part of the customer's name or domain; at most 256 characters "
        "(SEARCH_TOO_LONG).",
    )
    expiring_within_days: int | None = strawberry.field(
        default=None, description="Approved registrations whose protection ends within N days."
    )
    conflicted: bool | None = None
    overdue: bool | None = strawberry.field(
        default=None, description="Awaiting review past the SLA."
    )


@strawberry.input
class DealRegistrationIdInput:
    id: strawberry.ID


@strawberry.input
class DealRegistrationAttachProofInput:
    id: strawberry.ID
    file: Upload | None = strawberry.field(
        default=None,
        description="An invoice: PDF, PNG or JPEG (multipart request; judged by content). "
        "Give `file` or `files`.",
    )
    files: list[Upload] | None = strawberry.field(
        default=None,
        description="Several files at once (multipart map paths `variables.input.files.0`, …), "
        "instead of `file`: all are stored or none, and the registration holds at most "
        f"{MAX_ATTACHMENTS_PER_OWNER} files.",
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key and the same files returns the files the "
        "first request attached and stores nothing more (also once the registration is "
        "closed); other files under the key are IDEMPOTENCY_KEY_REUSED.",
    )
