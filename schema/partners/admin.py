"""Partner administration mutations (issue 12): create, update, suspend, reactivate, archive,
CSV import, and channel manager assignment. The rules are in partners/admin.py and
partners/imports.py; docs/partners.md says what each status means."""

from __future__ import annotations

from typing import Any, Self

import strawberry
from strawberry import Info
from strawberry.file_uploads import Upload

from infra.errors import DomainError
from partners import admin, imports
from partners.errors import PartnerErrorCode
from partners.policy import PARTNERS, PartnerOp
from schema.attachments import upload_source
from schema.context import Context
from schema.errors import UserError
from schema.mutations import Payload, Write, run
from schema.partners.types import PartnerType, UserType
from schema.permissions import allowed


@strawberry.type
class PartnerError(UserError):
    code: PartnerErrorCode


@strawberry.input(description="A person to talk to at a partner.")
class PartnerContactInput:
    name: str
    email: str
    phone: str = ""


@strawberry.input
class PartnerCreateInput:
    name: str = strawberry.field(description="Unique within your vendor (case-insensitive).")
    region: str = strawberry.field(
        description="e.g. EMEA, NA, APAC (stored upper-case). A comma is INVALID_CHARACTERS: "
        "contests list regions separated by commas."
    )
    legal_name: str = ""
    country: str | None = strawberry.field(
        default=None, description="ISO 3166-1 alpha-2 code, e.g. DE."
    )
    contacts: list[PartnerContactInput] = strawberry.field(default_factory=list)
    tags: list[str] = strawberry.field(
        default_factory=list, description="Lower-case words: letters, digits, '-', '_'."
    )
    external_ref: str | None = strawberry.field(
        default=None, description="Your own reference (e.g. CRM id); the key of a re-import."
    )


@strawberry.input(description="Fields left out (null) are not changed.")
class PartnerUpdateInput:
    id: strawberry.ID
    name: str | None = None
    legal_name: str | None = None
    region: str | None = None
    country: str | None = strawberry.field(
        default=None, description="ISO 3166-1 alpha-2; an empty string clears it."
    )
    contacts: list[PartnerContactInput] | None = strawberry.field(
        default=None, description="Replaces the whole list."
    )
    tags: list[str] | None = strawberry.field(default=None, description="Replaces the set.")
    external_ref: str | None = None


@strawberry.input
class PartnerSuspendInput:
    id: strawberry.ID
    reason: str = strawberry.field(description="Required; vendor staff read it.")


@strawberry.input
class PartnerStatusInput:
    id: strawberry.ID
    reason: str = ""


@strawberry.input
class PartnersImportInput:
    file: Upload = strawberry.field(
        description="UTF-8 CSV with header name,region and any of external_ref,legal_name,"
        "country,tags,contact_name,contact_email,contact_phone (tags separated by ';')."
    )
    good_rows_only: bool = strawberry.field(
        default=False,
        description="Import the good rows and report the bad ones (default: all or nothing).",
    )


@strawberry.input
class PartnerManagerInput:
    partner_id: strawberry.ID
    manager_id: strawberry.ID = strawberry.field(
        description="A User id: an active CHANNEL_MANAGER of your vendor."
    )


def _contacts(raw: list[PartnerContactInput] | None) -> list[admin.Contact] | None:
    if raw is None:
        return None
    return [admin.Contact(name=c.name, email=c.email, phone=c.phone) for c in raw]


@strawberry.type
class PartnerPayload(Payload[admin.Change], errors=PartnerError):
    partner: PartnerType | None = None
    user_errors: list[PartnerError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: admin.Change, write: Write) -> Self:
        return cls(partner=PartnerType.from_model(result.partner))


@strawberry.type
class PartnerManagerPayload(Payload[admin.Assignment], errors=PartnerError):
    partner: PartnerType | None = None
    manager: UserType | None = None
    user_errors: list[PartnerError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: admin.Assignment, write: Write) -> Self:
        return cls(
            partner=PartnerType.from_model(result.partner),
            manager=UserType.from_model(result.manager),
        )


@strawberry.type(description="A bad row of a partner import file.")
class PartnerImportRowError:
    line: int
    code: PartnerErrorCode
    message: str


@strawberry.type(description="What an import did (or, when refused, would have found).")
class PartnerImportResult:
    rows: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    applied: bool = strawberry.field(description="False when nothing was written.")


@strawberry.type
class PartnersImportPayload(Payload[imports.ImportReport], errors=PartnerError):
    result: PartnerImportResult | None = None
    row_errors: list[PartnerImportRowError] = strawberry.field(
        default_factory=list, description="Bad rows by line number (at most 1,000)."
    )
    user_errors: list[PartnerError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: imports.ImportReport, write: Write) -> Self:
        return cls.reporting(result)

    @classmethod
    def failed(cls, errors: list[DomainError]) -> Self:
        """A refused import still reports what it found (ImportRejected carries it)."""
        failed = super().failed(errors)
        reports = [e.report for e in errors if isinstance(e, imports.ImportRejected)]
        if reports:
            reported = cls.reporting(reports[0])
            failed.result, failed.row_errors = reported.result, reported.row_errors
        return failed

    @classmethod
    def reporting(cls, report: imports.ImportReport) -> Self:
        return cls(
            result=PartnerImportResult(
                rows=report.rows, inserted=report.inserted, updated=report.updated,
                unchanged=report.unchanged, rejected=report.rejected, applied=report.applied,
            ),
            row_errors=[
                PartnerImportRowError(line=e.line, code=e.code, message=e.message)
                for e in report.errors
            ],
        )  # fmt: skip


@strawberry.type
class PartnerAdminMutation:
    @strawberry.mutation(
        permission_classes=[allowed(PARTNERS, PartnerOp.PARTNER_CREATE)],
        description="Create a partner organisation (ACTIVE). Vendor admins.",
    )
    async def partner_create(
        self, info: Info[Context, None], input: PartnerCreateInput
    ) -> PartnerPayload:
        fields = admin.PartnerFields(
            name=input.name, legal_name=input.legal_name, region=input.region,
            country=input.country, contacts=_contacts(input.contacts), tags=input.tags,
            external_ref=input.external_ref,
        )  # fmt: skip
        return await run(info, PartnerPayload, lambda m: admin.create_partner(
            m.session, m.principal, m.clock, fields=fields
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(PARTNERS, PartnerOp.PARTNER_UPDATE)],
        description="Change a partner's details. Vendor admins: every field; channel "
        "managers: only contacts and tags of their assigned partners (FIELD_NOT_EDITABLE "
        "otherwise). An archived partner takes no changes (ARCHIVED).",
    )
    async def partner_update(
        self, info: Info[Context, None], input: PartnerUpdateInput
    ) -> PartnerPayload:
        fields = admin.PartnerFields(
            name=input.name, legal_name=input.legal_name, region=input.region,
            country=input.country, contacts=_contacts(input.contacts), tags=input.tags,
            external_ref=input.external_ref,
        )  # fmt: skip
        return await run(info, PartnerPayload, lambda m: admin.update_partner(
            m.session, m.principal, m.clock, partner_id=m.id(input.id, "Partner"), fields=fields
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(PARTNERS, PartnerOp.PARTNER_SUSPEND)],
        description="Suspend an active partner, with a reason: its users are refused at once "
        "(PARTNER_INACTIVE, open sockets closed) and it submits nothing new; what it already "
        "submitted is still reviewed and approved sales keep crediting its earnings.",
    )
    async def partner_suspend(
        self, info: Info[Context, None], input: PartnerSuspendInput
    ) -> PartnerPayload:
        return await run(info, PartnerPayload, lambda m: admin.suspend_partner(
            m.session, m.principal, m.clock, partner_id=m.id(input.id, "Partner"),
            reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(PARTNERS, PartnerOp.PARTNER_REACTIVATE)],
        description="Reactivate a suspended partner: its users sign in again at once.",
    )
    async def partner_reactivate(
        self, info: Info[Context, None], input: PartnerStatusInput
    ) -> PartnerPayload:
        return await run(info, PartnerPayload, lambda m: admin.reactivate_partner(
            m.session, m.principal, m.clock, partner_id=m.id(input.id, "Partner"),
            reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(PARTNERS, PartnerOp.PARTNER_ARCHIVE)],
        description="Archive a partner (final): hidden from the default partners list, no "
        "new activity, its users refused; its history is kept.",
    )
    async def partner_archive(
        self, info: Info[Context, None], input: PartnerStatusInput
    ) -> PartnerPayload:
        return await run(info, PartnerPayload, lambda m: admin.archive_partner(
            m.session, m.principal, m.clock, partner_id=m.id(input.id, "Partner"),
            reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(PARTNERS, PartnerOp.PARTNERS_IMPORT)],
        description="Import partners from a CSV file (multipart request). Rows match existing "
        "partners by externalRef, else by name; re-importing a file changes nothing. All or "
        "nothing unless goodRowsOnly. Tier is not imported.",
    )
    async def partners_import(
        self, info: Info[Context, None], input: PartnersImportInput
    ) -> PartnersImportPayload:
        file: Any = input.file
        return await run(info, PartnersImportPayload, lambda m: imports.import_partners(
            m.session, m.principal, m.clock, source=upload_source(file),
            filename=str(file.filename or ""), good_rows_only=input.good_rows_only,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(PARTNERS, PartnerOp.MANAGER_ASSIGN)],
        description="Assign a channel manager to a partner: from the moment it commits the "
        "manager sees the partner's deals, claims and earnings and reviews them.",
    )
    async def partner_manager_assign(
        self, info: Info[Context, None], input: PartnerManagerInput
    ) -> PartnerManagerPayload:
        return await run(info, PartnerManagerPayload, lambda m: admin.assign_manager(
            m.session, m.principal, m.clock, partner_id=m.id(input.partner_id, "Partner"),
            manager_id=m.id(input.manager_id, "User"),
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(PARTNERS, PartnerOp.MANAGER_UNASSIGN)],
        description="Unassign a channel manager: it stops seeing the partner at once "
        "(queries, queues and open subscriptions).",
    )
    async def partner_manager_unassign(
        self, info: Info[Context, None], input: PartnerManagerInput
    ) -> PartnerManagerPayload:
        return await run(info, PartnerManagerPayload, lambda m: admin.unassign_manager(
            m.session, m.principal, m.clock, partner_id=m.id(input.partner_id, "Partner"),
            manager_id=m.id(input.manager_id, "User"),
        ))  # fmt: skip
