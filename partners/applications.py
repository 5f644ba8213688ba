"""Partner applications: a company applies to a vendor's program without an account
(``apply``), vendor reviewers approve (a partner is created) or reject (with a reason),
and the applicant follows its application by the reference it was given (``status_of``).

- No tenant enumeration: an unknown vendor slug is answered exactly like a known one (an
  application is stored without a vendor; its status stays PENDING; nobody reviews it).
- Throttled per client address and per e-mail (``ApplicationLimits``; counted in SQL over
  the last hour, so every API process shares the count): ``RATE_LIMITED``.
- Approving creates the partner (``partners.admin.add_partner``, audited) and, when the
  approver may invite (the invitations table: a vendor admin), an invitation for the
  applicant as the partner's first PARTNER_ADMIN, in the same transaction. A channel
  manager's approval creates the partner only; a vendor admin then invites the contact
  (``invitationCreate``). See docs/partners.md.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from infra import audit as infra_audit
from infra import codes
from infra.clock import Clock
from infra.db import for_change
from infra.errors import DomainError, DomainErrors
from infra.text import free_text_problem, identifier_problem, name_problem
from partners import admin, invitations
from partners.audit_log import AuditEntity, actor_of
from partners.errors import ApplicationErrorCode, InvitationErrorCode, PartnerErrorCode
from partners.events import record_applied
from partners.invitations import IssuedInvitation
from partners.models import ApplicationStatus, PartnerApplication, Vendor
from partners.names import MAX_NAME_KEY, name_key
from partners.policy import APPLICATIONS, INVITATIONS, ApplicationOp, InvitationOp
from partners.roles import Principal, Role

WINDOW = timedelta(hours=1)
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


@dataclass(frozen=True)
class ApplicationLimits:
    """How many applications one client address, and one e-mail address, may send an hour
    (``CHANNELBOARD_APPLY_LIMIT_PER_ADDRESS``, ``CHANNELBOARD_APPLY_LIMIT_PER_EMAIL``)."""

    per_address: int = 5
    per_email: int = 3


@dataclass(frozen=True)
class ApplicationForm:
    vendor_slug: str
    company: str
    contact_name: str
    contact_email: str
    country: str
    message: str = ""


def new_reference() -> str:
    return "APP-" + "".join(secrets.choice(_ALPHABET) for _ in range(12))


def _check(form: ApplicationForm) -> ApplicationForm:
    errors: list[DomainError] = []

    def text(value: str, field: str, limit: int, required: bool = True) -> str:
        value = value.strip()
        if required and not value:
            errors.append(DomainError(ApplicationErrorCode.REQUIRED, "Required.", field))
        elif len(value) > limit:
            errors.append(
                DomainError(ApplicationErrorCode.TOO_LONG, f"At most {limit} characters.", field)
            )
        elif problem := (name_problem(value) if required else free_text_problem(value)):
            errors.append(DomainError(ApplicationErrorCode.INVALID_CHARACTERS, problem, field))
        return value

    company = text(form.company, "company", 200)  # names: required, one line
    if len(name_key(company)) > MAX_NAME_KEY and not any(e.field == "company" for e in errors):
        # The partner's name it would be: refused by partnerCreate's rule (admin.clean).
        errors.append(
            DomainError(
                ApplicationErrorCode.TOO_LONG,
                "This name is too long once its compatibility characters are spelled out.",
                "company",
            )
        )
    contact_name = text(form.contact_name, "contact_name", 200)
    message = text(form.message, "message", 2000, required=False)  # free text
    email = form.contact_email.strip().lower()
    if problem := identifier_problem(email):
        errors.append(
            DomainError(ApplicationErrorCode.INVALID_CHARACTERS, problem, "contact_email")
        )
    elif len(email) > 254 or not admin.EMAIL.match(email):
        errors.append(
            DomainError(
                ApplicationErrorCode.INVALID_EMAIL, "Not an e-mail address.", "contact_email"
            )
        )
    country = form.country.strip().upper()
    if not codes.is_country(country):
        errors.append(
            DomainError(
                ApplicationErrorCode.INVALID_COUNTRY,
                "The country is an ISO 3166-1 alpha-2 code, e.g. DE.",
                "country",
            )
        )
    if errors:
        raise DomainErrors(errors)
    return ApplicationForm(
        vendor_slug=form.vendor_slug.strip().lower()[:64], company=company,
        contact_name=contact_name, contact_email=email, country=country, message=message,
    )  # fmt: skip


async def apply(
    session: AsyncSession,
    clock: Clock,
    *,
    form: ApplicationForm,
    client_address: str,
    limits: ApplicationLimits,
) -> PartnerApplication:
    """Record an application; unauthenticated. The answer (a reference) is the same
    whether or not the slug names a vendor."""
    checked = _check(form)
    now = clock.now()
    since = now - WINDOW
    address = client_address[:64] or "unknown"

    async def recent(*where: object) -> int:
        found = await session.exec(
            select(func.count())
            .select_from(PartnerApplication)
            .where(col(PartnerApplication.created_at) > since, *where)  # type: ignore[arg-type]
        )
        return int(found.one())

    if await recent(PartnerApplication.client_address == address) >= limits.per_address or (
        await recent(PartnerApplication.contact_email == checked.contact_email) >= limits.per_email
    ):
        raise DomainError(
            ApplicationErrorCode.RATE_LIMITED,
            "Too many applications from here or for this e-mail address; try again later.",
        )
    vendor = (await session.exec(select(Vendor).where(Vendor.slug == checked.vendor_slug))).first()
    application = PartnerApplication(
        reference=new_reference(), vendor_id=vendor.id if vendor else None,
        vendor_slug=checked.vendor_slug, company=checked.company,
        contact_name=checked.contact_name, contact_email=checked.contact_email,
        country=checked.country, message=checked.message, client_address=address,
        created_at=now,
    )  # fmt: skip
    session.add(application)
    await session.flush()
    await record_applied(session, clock, application)
    return application


async def status_of(session: AsyncSession, reference: str) -> PartnerApplication | None:
    """The application with this reference (the applicant shows only its status and the
    rejection reason), or None."""
    found = await session.exec(
        select(PartnerApplication).where(PartnerApplication.reference == reference.strip().upper())
    )
    return found.first()


def readable_applications(
    principal: Principal, status: ApplicationStatus | None = None
) -> SelectOfScalar[PartnerApplication]:
    if not APPLICATIONS.allows(principal, ApplicationOp.APPLICATIONS_READ):
        return select(PartnerApplication).where(col(PartnerApplication.id).is_(None))
    stmt = select(PartnerApplication).where(PartnerApplication.vendor_id == principal.vendor_id)
    if status is not None:
        stmt = stmt.where(PartnerApplication.status == status)
    return stmt


async def applications_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PartnerApplication]:
    rows = await session.exec(
        readable_applications(principal).where(col(PartnerApplication.id).in_(ids))
    )
    return {a.id: a for a in rows}


async def _pending(
    session: AsyncSession, principal: Principal, application_id: uuid.UUID
) -> PartnerApplication:
    found = (
        await session.exec(
            for_change(
                readable_applications(principal).where(PartnerApplication.id == application_id),
                PartnerApplication,
            )
        )
    ).first()
    if found is None:
        raise DomainError(ApplicationErrorCode.NOT_FOUND, "No such application.", "id")
    if found.status is not ApplicationStatus.PENDING:
        raise DomainError(
            ApplicationErrorCode.ALREADY_DECIDED, "This application is already decided.", "id"
        )
    return found


@dataclass(frozen=True)
class Approval:
    application: PartnerApplication
    invitation: IssuedInvitation | None  # None when the approver may not invite


async def approve(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    application_id: uuid.UUID,
    region: str,
) -> Approval:
    """Create the partner (named after the company, with the applicant as its contact) and,
    if the approver may invite, invite the applicant as its first PARTNER_ADMIN."""
    APPLICATIONS.require(principal, ApplicationOp.APPLICATION_APPROVE)
    application = await _pending(session, principal, application_id)
    fields = admin.PartnerFields(
        name=application.company, region=region, country=application.country,
        contacts=[admin.Contact(application.contact_name, application.contact_email)],
    )  # fmt: skip
    try:
        change = await admin.add_partner(
            session, principal, clock, fields=fields, application_id=application.id
        )
    except DomainError as error:
        if error.code is PartnerErrorCode.DUPLICATE_NAME:
            raise DomainError(
                ApplicationErrorCode.DUPLICATE_NAME,
                "A partner with the company's name exists already.",
                "id",
            ) from error
        raise DomainError(ApplicationErrorCode.REQUIRED, error.message, "region") from error
    except DomainErrors as errors:
        first = errors.errors[0]
        code = ApplicationErrorCode.REQUIRED
        if first.code is PartnerErrorCode.INVALID_CHARACTERS:
            code = ApplicationErrorCode.INVALID_CHARACTERS
        elif first.code is PartnerErrorCode.TOO_LONG:  # a company applied before the rule
            code = ApplicationErrorCode.TOO_LONG
        raise DomainError(code, first.message, "region") from errors
    issued = None
    if INVITATIONS.allows(principal, InvitationOp.CREATE):
        try:
            issued = await invitations.create_invitation(
                session, principal, clock, email=application.contact_email,
                role=Role.PARTNER_ADMIN, partner_id=change.partner.id,
            )  # fmt: skip
        except DomainError as error:
            if error.code is InvitationErrorCode.DUPLICATE_EMAIL:
                raise DomainError(
                    ApplicationErrorCode.DUPLICATE_EMAIL,
                    "A user with the applicant's e-mail exists already.",
                    "id",
                ) from error
            raise
    decided = await _decide(
        session, principal, clock, application, ApplicationStatus.APPROVED, None,
        partner_id=change.partner.id,
    )  # fmt: skip
    return Approval(decided, issued)


async def reject(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    application_id: uuid.UUID,
    reason: str,
) -> PartnerApplication:
    """Reject with a reason the applicant reads (``partnerApplicationStatus``)."""
    APPLICATIONS.require(principal, ApplicationOp.APPLICATION_REJECT)
    application = await _pending(session, principal, application_id)
    text = reason.strip()
    if not text:
        raise DomainError(
            ApplicationErrorCode.REQUIRED, "Say why (the applicant reads it).", "reason"
        )
    if len(text) > 500:
        raise DomainError(ApplicationErrorCode.TOO_LONG, "At most 500 characters.", "reason")
    if problem := free_text_problem(text):
        raise DomainError(ApplicationErrorCode.INVALID_CHARACTERS, problem, "reason")
    return await _decide(session, principal, clock, application, ApplicationStatus.REJECTED, text)


async def _decide(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    application: PartnerApplication,
    status: ApplicationStatus,
    reason: str | None,
    *,
    partner_id: uuid.UUID | None = None,
) -> PartnerApplication:
    application.status = status
    application.rejection_reason = reason
    application.partner_id = partner_id
    application.decided_by = actor_of(principal)
    application.decided_at = clock.now()
    session.add(application)
    await session.flush()
    after: dict[str, object] = {"status": status.value}
    if partner_id is not None:
        after["partner_id"] = str(partner_id)
    assert application.vendor_id is not None
    await infra_audit.record(
        session, vendor_id=application.vendor_id, actor=actor_of(principal),
        action=f"partner_application.{status.value.lower()}",
        entity_type=AuditEntity.PARTNER_APPLICATION, entity_id=str(application.id),
        before={"status": ApplicationStatus.PENDING.value}, after=after, reason=reason,
        at=clock.now(),
    )  # fmt: skip
    return application
