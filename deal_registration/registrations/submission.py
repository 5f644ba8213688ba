"""Registering a deal: validation, drafts and submission (idempotent, with an optional
proof file stored last). Services validate first, raise DomainError(s), flush and never
commit (the caller owns the transaction)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue import repository as catalogue
from catalogue.models import Product
from deal_registration import attachments
from deal_registration.registrations import conflicts, repository
from deal_registration.registrations.detection import detect_conflicts
from deal_registration.registrations.errors import DealRegistrationErrorCode as Code
from deal_registration.registrations.lifecycle import (
    check_transition,
    load_registration,
    record_transition,
)
from deal_registration.registrations.models import (
    ConflictStage,
    DealAction,
    DealProgramSettings,
    DealRegistration,
    DealRegistrationLine,
    DealStatus,
)
from deal_registration.registrations.policy import DEALS, DealOp
from deal_registration.storage import Storage
from infra import idempotency
from infra.clock import Clock
from infra.codes import is_country
from infra.errors import DomainError, DomainErrors
from infra.money import is_currency
from infra.text import free_text_problem, identifier_problem, name_problem
from partners import repository as partners
from partners.roles import Principal

MAX_VALUE_MINOR = 10**12  # 10 billion in a 2-decimal currency: above is a typo


MAX_QUANTITY = 1_000_000


MAX_CLOSE_DAYS_AHEAD = 3 * 366


_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


SUBMIT_SCOPE = "dealRegistrationSubmit"  # idempotency keys of submission


@dataclass(frozen=True)
class LineInput:
    sku: str
    quantity: int


@dataclass(frozen=True)
class RegistrationInput:
    customer_name: str
    customer_domain: str
    customer_country: str
    estimated_value_minor: int
    currency: str
    expected_close_date: date
    lines: list[LineInput] = field(default_factory=list)
    customer_region: str = ""
    contact_name: str = ""
    contact_email: str = ""
    notes: str = ""
    partner_id: uuid.UUID | None = None


def add_business_days(start: datetime, days: int) -> datetime:
    """``days`` working days (Monday to Friday, UTC) after ``start``, same time of day.
    Public holidays are not known to the service."""
    current = start
    added = 0
    while added < days:
        current += timedelta(days=1)
        if current.weekday() < 5:
            added += 1
    return current


async def submit_registration(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    data: RegistrationInput,
    draft: bool = False,
    idempotency_key: str | None = None,
    key_retention: timedelta = idempotency.DEFAULT_RETENTION,
    proof_files: Sequence[attachments.ProofFile] = (),
    storage: Storage | None = None,
    max_upload_bytes: int = attachments.DEFAULT_MAX_BYTES,
) -> DealRegistration:
    """Register a deal (or save it as a draft), optionally with proof files (all or nothing,
    stored last, after every check). With an idempotency key, the same caller's retry of the same
    request returns the first registration unchanged; the same key with different content
    (or a different file) is refused (``infra.idempotency``)."""
    DEALS.require(principal, DealOp.SUBMIT)
    now = clock.now()
    partner_id = await _partner_for(session, principal, data.partner_id)
    taken = await idempotency.take(
        session, vendor_id=principal.vendor_id, caller=principal.caller, scope=SUBMIT_SCOPE,
        key=idempotency_key, now=now, codes=Code, retention=key_retention,
        request={
            **asdict(data), "partner_id": partner_id, "draft": draft,
            "proof_sha256": attachments.proof_digest(proof_files),
        },
    )  # fmt: skip
    if taken is not None and taken.replay is not None:
        first = await repository.get_readable(session, principal, taken.replay)
        if first is None:
            raise idempotency.gone(Code)
        return first

    program = await repository.program_settings(session, principal.vendor_id)
    clean, skus = await _validate(session, principal, data, program, now)
    attachments.check_proofs(proof_files, max_upload_bytes, noun="deal registration")
    registration = DealRegistration(
        vendor_id=principal.vendor_id,
        partner_id=partner_id,
        registered_by_id=principal.user_id,
        status=DealStatus.DRAFT if draft else DealStatus.SUBMITTED,
        customer_name=clean.customer_name,
        customer_name_key=conflicts.normalise_name(clean.customer_name),
        customer_domain=clean.customer_domain,
        customer_country=clean.customer_country,
        customer_region=clean.customer_region,
        contact_name=clean.contact_name,
        contact_email=clean.contact_email,
        estimated_value_minor=clean.estimated_value_minor,
        currency=clean.currency,
        expected_close_date=clean.expected_close_date,
        notes=clean.notes,
        big_deal=_is_big(clean, program),
        created_at=now,
        updated_at=now,
    )
    session.add(registration)
    await session.flush()
    if taken is not None:
        await taken.done(session, registration.id)
    for line in clean.lines:
        product = skus[line.sku]
        session.add(
            DealRegistrationLine(
                registration_id=registration.id,
                product_id=product.id,
                sku=product.sku,
                quantity=line.quantity,
                unit_list_price_minor=product.list_price_minor,
            )
        )
    await session.flush()
    if draft:
        await record_transition(
            session, clock, principal, registration, DealAction.CREATE_DRAFT, None
        )
    else:
        await enter_submitted(session, clock, principal, registration, program, from_status=None)
    if proof_files:
        assert storage is not None, "a proof file needs a storage backend"
        await attachments.store_attachments(
            session, clock, storage, vendor_id=registration.vendor_id,
            owner_kind=repository.REGISTRATION_OWNER, owner_id=registration.id, files=proof_files,
            uploaded_by_id=principal.user_id, max_bytes=max_upload_bytes,
        )  # fmt: skip
    return registration


async def _partner_for(
    session: AsyncSession, principal: Principal, requested: uuid.UUID | None
) -> uuid.UUID:
    if principal.is_partner:
        assert principal.partner_id is not None
        if requested is not None and requested != principal.partner_id:
            raise DomainError(
                Code.PARTNER_NOT_ALLOWED,
                "You can register deals for your own organisation only.",
                "partner_id",
            )
        return principal.partner_id
    if requested is None:
        raise DomainError(Code.REQUIRED, "Say which partner the deal is for.", "partner_id")
    partner = await partners.get_readable_partner(session, principal, requested)
    if partner is None:
        raise DomainError(Code.NOT_FOUND, "No such partner.", "partner_id")
    return partner.id


def _is_big(data: RegistrationInput, program: DealProgramSettings) -> bool:
    """At or above the vendor's threshold. Amounts in another currency than the
    threshold's cannot be compared, so they are treated as big (they need the contact)."""
    if data.currency != program.currency:
        return True
    return data.estimated_value_minor >= program.big_deal_threshold_minor


async def _validate(
    session: AsyncSession,
    principal: Principal,
    data: RegistrationInput,
    program: DealProgramSettings,
    now: datetime,
) -> tuple[RegistrationInput, dict[str, Product]]:
    errors: list[DomainError] = []

    def text(
        value: str,
        name: str,
        limit: int,
        *,
        required: bool = False,
        multiline: bool = False,
        identifier: bool = False,
    ) -> str:
        value = value.strip()
        check = (
            free_text_problem if multiline else identifier_problem if identifier else name_problem
        )
        if required and not value:
            errors.append(DomainError(Code.REQUIRED, "This field is required.", name))
        elif len(value) > limit:
            errors.append(DomainError(Code.TOO_LONG, f"At most {limit} characters.", name))
        elif value and (problem := check(value)):
            errors.append(DomainError(Code.INVALID_CHARACTERS, problem, name))
        return value

    name = text(data.customer_name, "customer.name", 200, required=True)
    if name and not conflicts.normalise_name(name):
        errors.append(DomainError(Code.REQUIRED, "Give the customer's name.", "customer.name"))
    domain = conflicts.registrable_domain(data.customer_domain) or ""
    if not domain:
        errors.append(
            DomainError(
                Code.INVALID_DOMAIN,
                "Give the customer's web domain, e.g. example.com.",
                "customer.domain",
            )
        )
    country = data.customer_country.strip().upper()
    if not is_country(country):
        errors.append(
            DomainError(
                Code.INVALID_COUNTRY, "Use an ISO 3166-1 country code like DE.", "customer.country"
            )
        )
    region = text(data.customer_region, "customer.region", 64, identifier=True)
    contact_name = text(data.contact_name, "contact.name", 200)
    contact_email = text(data.contact_email, "contact.email", 254, identifier=True).lower()
    if contact_email and not identifier_problem(contact_email) and not _EMAIL.match(contact_email):
        errors.append(DomainError(Code.INVALID_EMAIL, "Not an e-mail address.", "contact.email"))
    notes = text(data.notes, "notes", 4000, multiline=True)
    currency = data.currency.strip().upper()
    if not is_currency(currency):
        errors.append(
            DomainError(
                Code.INVALID_CURRENCY, "Use an ISO 4217 code like USD.", "estimated_value.currency"
            )
        )
    if not 0 < data.estimated_value_minor <= MAX_VALUE_MINOR:
        errors.append(
            DomainError(
                Code.INVALID_VALUE,
                "The estimated value must be more than zero and at most 10,000,000,000.",
                "estimated_value.amount",
            )
        )
    today = now.date()
    if data.expected_close_date < today:
        errors.append(
            DomainError(
                Code.CLOSE_DATE_IN_PAST,
                "The expected close date is in the past.",
                "expected_close_date",
            )
        )
    elif data.expected_close_date > today + timedelta(days=MAX_CLOSE_DAYS_AHEAD):
        errors.append(
            DomainError(
                Code.INVALID_VALUE,
                "The expected close date is more than three years away.",
                "expected_close_date",
            )
        )
    lines = [
        LineInput(sku=catalogue.normalise_sku(li.sku), quantity=li.quantity) for li in data.lines
    ]
    if not lines:
        errors.append(DomainError(Code.REQUIRED, "Name at least one product.", "lines"))
    products = await catalogue.products_by_sku(
        session, principal.vendor_id, [li.sku for li in lines]
    )
    seen: set[str] = set()
    for index, line in enumerate(lines):
        product = products.get(line.sku)
        if product is None or not product.active:
            errors.append(DomainError(Code.UNKNOWN_SKU, "No such product.", f"lines.{index}.sku"))
        elif line.sku in seen:
            errors.append(
                DomainError(Code.DUPLICATE_SKU, "Each product once.", f"lines.{index}.sku")
            )
        seen.add(line.sku)
        if not 0 < line.quantity <= MAX_QUANTITY:
            errors.append(
                DomainError(
                    Code.INVALID_QUANTITY,
                    f"The quantity is between 1 and {MAX_QUANTITY:,}.",
                    f"lines.{index}.quantity",
                )
            )
    clean = RegistrationInput(
        customer_name=name,
        customer_domain=domain,
        customer_country=country,
        customer_region=region,
        contact_name=contact_name,
        contact_email=contact_email,
        estimated_value_minor=data.estimated_value_minor,
        currency=currency,
        expected_close_date=data.expected_close_date,
        notes=notes,
        lines=lines,
        partner_id=data.partner_id,
    )
    if not errors and _is_big(clean, program):
        for value, name_ in ((contact_name, "contact.name"), (contact_email, "contact.email")):
            if not value:
                errors.append(
                    DomainError(
                        Code.CONTACT_REQUIRED,
                        "A big deal needs the customer contact's name and e-mail.",
                        name_,
                    )
                )
    if errors:
        raise DomainErrors(errors)
    return clean, {p.sku: p for p in products.values()}


async def enter_submitted(
    session: AsyncSession,
    clock: Clock,
    principal: Principal,
    registration: DealRegistration,
    program: DealProgramSettings,
    *,
    from_status: DealStatus | None,
) -> None:
    now = clock.now()
    registration.status = DealStatus.SUBMITTED
    registration.submitted_at = now
    registration.review_due_at = add_business_days(now, program.review_sla_days)
    registration.updated_at = now
    session.add(registration)
    await session.flush()
    await detect_conflicts(session, registration, program, now, ConflictStage.SUBMISSION)
    await record_transition(session, clock, principal, registration, DealAction.SUBMIT, from_status)


async def submit_draft(
    session: AsyncSession, principal: Principal, clock: Clock, *, registration_id: uuid.UUID
) -> DealRegistration:
    DEALS.require(principal, DealOp.SUBMIT_DRAFT)
    registration = await load_registration(session, principal, registration_id)
    current = check_transition(registration, DealAction.SUBMIT, clock.now())
    program = await repository.program_settings(session, registration.vendor_id)
    await enter_submitted(session, clock, principal, registration, program, from_status=current)
    return registration
