"""Deal registration rules: submission, conflict detection, the lifecycle, review,
protection, extensions and expiry. Services validate first, raise DomainError(s), flush
and never commit (the caller owns the transaction)."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue import repository as catalogue
from catalogue.models import Product
from deal_registration import attachments
from deal_registration.events import DealApproved, DealWon, Line
from deal_registration.registrations import conflicts, notices, proof, repository
from deal_registration.registrations.errors import DealRegistrationErrorCode as Code
from deal_registration.registrations.models import (
    DEFAULT_SETTINGS,
    PROTECTED_CUSTOMER_INDEX,
    ConflictStage,
    DealAction,
    DealConflict,
    DealExtensionRequest,
    DealProgramSettings,
    DealRegistration,
    DealRegistrationLine,
    DealStatus,
    DealTransition,
    ExtensionStatus,
)
from deal_registration.storage import Storage
from infra import idempotency
from infra.clock import Clock
from infra.codes import is_country
from infra.errors import DomainError, DomainErrors
from infra.money import is_currency
from infra.outbox import record_event
from partners import repository as partners
from partners.roles import Principal, Role

MAX_VALUE_MINOR = 10**12  # 10 billion in a 2-decimal currency: above is a typo
MAX_QUANTITY = 1_000_000
MAX_CLOSE_DAYS_AHEAD = 3 * 366
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")

REVIEWERS = frozenset({Role.VENDOR_ADMIN, Role.CHANNEL_MANAGER})
PARTNER_USERS = frozenset({Role.PARTNER_ADMIN, Role.PARTNER_REP})
SUBMITTERS = PARTNER_USERS | REVIEWERS
SUBMIT_SCOPE = "dealRegistrationSubmit"  # idempotency keys of submission

# The lifecycle: which statuses each action may start from, and where it leads.
# Expired approvals count as EXPIRED here (repository.effective_status), as in queries.
TRANSITIONS: dict[DealAction, tuple[frozenset[DealStatus], DealStatus]] = {
    DealAction.SUBMIT: (frozenset({DealStatus.DRAFT}), DealStatus.SUBMITTED),
    DealAction.START_REVIEW: (frozenset({DealStatus.SUBMITTED}), DealStatus.UNDER_REVIEW),
    DealAction.APPROVE: (frozenset({DealStatus.UNDER_REVIEW}), DealStatus.APPROVED),
    DealAction.REJECT: (frozenset({DealStatus.UNDER_REVIEW}), DealStatus.REJECTED),
    DealAction.WITHDRAW: (
        frozenset({DealStatus.DRAFT, DealStatus.SUBMITTED, DealStatus.UNDER_REVIEW}),
        DealStatus.WITHDRAWN,
    ),
    DealAction.MARK_WON: (frozenset({DealStatus.APPROVED}), DealStatus.WON),
    DealAction.MARK_LOST: (frozenset({DealStatus.APPROVED}), DealStatus.LOST),
    DealAction.EXPIRE: (frozenset({DealStatus.APPROVED}), DealStatus.EXPIRED),
    DealAction.REQUEST_EXTENSION: (frozenset({DealStatus.APPROVED}), DealStatus.APPROVED),
    DealAction.GRANT_EXTENSION: (frozenset({DealStatus.APPROVED}), DealStatus.APPROVED),
    DealAction.REFUSE_EXTENSION: (frozenset({DealStatus.APPROVED}), DealStatus.APPROVED),
}
# Who may take each action (the schema checks the same roles; row visibility comes from
# repository.readable_registrations).
ACTORS: dict[DealAction, frozenset[Role]] = {
    DealAction.SUBMIT: PARTNER_USERS,
    DealAction.START_REVIEW: REVIEWERS,
    DealAction.APPROVE: REVIEWERS,
    DealAction.REJECT: REVIEWERS,
    DealAction.WITHDRAW: PARTNER_USERS,
    DealAction.MARK_WON: PARTNER_USERS | REVIEWERS,
    DealAction.MARK_LOST: PARTNER_USERS | REVIEWERS,
    DealAction.REQUEST_EXTENSION: PARTNER_USERS,
    DealAction.GRANT_EXTENSION: REVIEWERS,
    DealAction.REFUSE_EXTENSION: REVIEWERS,
}


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


# --- submission --------------------------------------------------------------------------


async def submit_registration(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    data: RegistrationInput,
    draft: bool = False,
    idempotency_key: str | None = None,
    proof_file: attachments.ProofFile | None = None,
    storage: Storage | None = None,
    max_upload_bytes: int = attachments.DEFAULT_MAX_BYTES,
) -> DealRegistration:
    """Register a deal (or save it as a draft), optionally with a proof file (stored last,
    after every check). With an idempotency key, the same caller's retry of the same
    request returns the first registration unchanged; the same key with different content
    (or a different file) is refused (``infra.idempotency``)."""
    now = clock.now()
    if principal.role not in SUBMITTERS:
        raise DomainError(Code.PARTNER_NOT_ALLOWED, "Your role may not register deals.")
    partner_id = await _partner_for(session, principal, data.partner_id)
    taken = await idempotency.take(
        session, vendor_id=principal.vendor_id, caller=principal.caller, scope=SUBMIT_SCOPE,
        key=idempotency_key, now=now, codes=Code,
        request={
            **asdict(data), "partner_id": partner_id, "draft": draft,
            "proof_sha256": hashlib.sha256(proof_file.data).hexdigest() if proof_file else None,
        },
    )  # fmt: skip
    if taken is not None and taken.replay is not None:
        first = await repository.get_readable(session, principal, taken.replay)
        if first is None:
            raise DomainError(Code.NOT_FOUND, "No such registration.", "idempotency_key")
        return first

    program = await repository.program_settings(session, principal.vendor_id)
    clean, skus = await _validate(session, principal, data, program, now)
    if proof_file is not None:
        try:
            attachments.check_proof(proof_file, max_upload_bytes)
        except DomainError as error:
            error.field = "proof"  # the input field here
            raise
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
        await _record(session, clock, principal, registration, DealAction.CREATE_DRAFT, None)
    else:
        await _enter_submitted(session, clock, principal, registration, program, from_status=None)
    if proof_file is not None:
        assert storage is not None, "a proof file needs a storage backend"
        await attachments.store_attachment(
            session, clock, storage, vendor_id=registration.vendor_id,
            owner_kind=proof.REGISTRATION_OWNER, owner_id=registration.id, file=proof_file,
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

    def text(value: str, name: str, limit: int, *, required: bool = False) -> str:
        value = value.strip()
        if required and not value:
            errors.append(DomainError(Code.REQUIRED, "This field is required.", name))
        elif len(value) > limit:
            errors.append(DomainError(Code.TOO_LONG, f"At most {limit} characters.", name))
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
    region = text(data.customer_region, "customer.region", 64)
    contact_name = text(data.contact_name, "contact.name", 200)
    contact_email = text(data.contact_email, "contact.email", 254).lower()
    if contact_email and not _EMAIL.match(contact_email):
        errors.append(DomainError(Code.INVALID_EMAIL, "Not an e-mail address.", "contact.email"))
    notes = text(data.notes, "notes", 4000)
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


async def _enter_submitted(
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
    await _record(session, clock, principal, registration, DealAction.SUBMIT, from_status)


# --- conflicts ---------------------------------------------------------------------------


async def detect_conflicts(
    session: AsyncSession,
    registration: DealRegistration,
    program: DealProgramSettings,
    now: datetime,
    stage: ConflictStage,
) -> list[tuple[DealConflict, DealRegistration]]:
    """Compare the registration with every active registration of its vendor (any partner)
    and record the evidence for this stage, replacing what the stage found before."""
    others = await repository.active_for_vendor(
        session, registration.vendor_id, now, exclude=registration.id
    )
    lines = await repository.lines_of(session, [registration.id, *(o.id for o in others)])

    def customer(r: DealRegistration) -> conflicts.Customer:
        return conflicts.Customer(
            name_key=r.customer_name_key,
            domain=r.customer_domain,
            country=r.customer_country,
            skus=frozenset(li.sku for li in lines[r.id]),
        )

    by_id = {o.id: o for o in others}
    matches = conflicts.find_matches(
        customer(registration),
        ((o.id, customer(o)) for o in others),
        threshold=program.similarity_threshold,
    )
    await session.exec(
        delete(DealConflict).where(
            col(DealConflict.registration_id) == registration.id,
            col(DealConflict.stage) == stage,
        )
    )
    found: list[tuple[DealConflict, DealRegistration]] = []
    for other_id, match in matches:
        other = by_id[other_id]  # type: ignore[index]
        row = DealConflict(
            vendor_id=registration.vendor_id,
            registration_id=registration.id,
            other_registration_id=other.id,
            stage=stage,
            rules=[rule.value for rule in match.rules],
            score=match.score,
            name_score=match.name_score,
            shared_skus=list(match.shared_skus),
            same_country=match.same_country,
            other_is_earlier=_earlier(other, registration),
            detected_at=now,
        )
        session.add(row)
        found.append((row, other))
    await session.flush()
    return found


def _earlier(a: DealRegistration, b: DealRegistration) -> bool:
    a_key = (a.submitted_at or a.created_at, a.id)
    b_key = (b.submitted_at or b.created_at, b.id)
    return a_key < b_key


# --- lifecycle ---------------------------------------------------------------------------


async def _load(
    session: AsyncSession, principal: Principal, registration_id: uuid.UUID, action: DealAction
) -> DealRegistration:
    registration = None
    if principal.role in ACTORS.get(action, frozenset()):
        registration = await repository.get_readable(session, principal, registration_id)
    if registration is None:
        raise DomainError(Code.NOT_FOUND, "No such deal registration.", "id")
    return registration


def _check(registration: DealRegistration, action: DealAction, now: datetime) -> DealStatus:
    allowed_from, _to = TRANSITIONS[action]
    current = repository.effective_status(registration, now)
    if current not in allowed_from:
        raise DomainError(
            Code.INVALID_TRANSITION,
            f"A registration that is {current.value} cannot be changed by {action.value}.",
            "id",
        )
    return current


async def _record(
    session: AsyncSession,
    clock: Clock,
    principal: Principal | None,
    registration: DealRegistration,
    action: DealAction,
    from_status: DealStatus | None,
    reason: str = "",
) -> DealTransition:
    now = clock.now()
    transition = DealTransition(
        vendor_id=registration.vendor_id,
        registration_id=registration.id,
        action=action,
        from_status=from_status,
        to_status=registration.status,
        actor_user_id=principal.user_id if principal else None,
        actor_role=principal.role.value if principal else "SYSTEM",
        reason=reason,
        at=now,
    )
    session.add(transition)
    await session.flush()
    if from_status != registration.status:
        await notices.record_status_change(
            session, clock, vendor_id=registration.vendor_id, partner_id=registration.partner_id,
            registration_id=registration.id,
            from_status=from_status.value if from_status else None,
            to_status=registration.status.value, at=now,
        )  # fmt: skip
    return transition


def _reason(value: str, *, required: bool, name: str = "reason") -> str:
    value = value.strip()
    if required and not value:
        raise DomainError(Code.REQUIRED, "Give a reason.", name)
    if len(value) > 1000:
        raise DomainError(Code.TOO_LONG, "At most 1000 characters.", name)
    return value


async def _simple_transition(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    registration_id: uuid.UUID,
    action: DealAction,
    reason: str,
    *,
    reason_required: bool = False,
) -> DealRegistration:
    now = clock.now()
    reason = _reason(reason, required=reason_required)
    registration = await _load(session, principal, registration_id, action)
    current = _check(registration, action, now)
    registration.status = TRANSITIONS[action][1]
    registration.updated_at = now
    if action in (DealAction.REJECT,):
        registration.decided_at = now
        registration.decided_by_id = principal.user_id
        registration.decision_reason = reason
    if action in (DealAction.MARK_WON, DealAction.MARK_LOST, DealAction.WITHDRAW):
        registration.closed_at = now
    session.add(registration)
    await session.flush()
    await _record(session, clock, principal, registration, action, current, reason)
    return registration


async def submit_draft(
    session: AsyncSession, principal: Principal, clock: Clock, *, registration_id: uuid.UUID
) -> DealRegistration:
    registration = await _load(session, principal, registration_id, DealAction.SUBMIT)
    current = _check(registration, DealAction.SUBMIT, clock.now())
    program = await repository.program_settings(session, registration.vendor_id)
    await _enter_submitted(session, clock, principal, registration, program, from_status=current)
    return registration


async def start_review(
    session: AsyncSession, principal: Principal, clock: Clock, *, registration_id: uuid.UUID
) -> DealRegistration:
    return await _simple_transition(
        session, principal, clock, registration_id, DealAction.START_REVIEW, ""
    )


async def reject(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    reason: str,
) -> DealRegistration:
    return await _simple_transition(
        session, principal, clock, registration_id, DealAction.REJECT, reason,
        reason_required=True,
    )  # fmt: skip


async def withdraw(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    reason: str = "",
) -> DealRegistration:
    return await _simple_transition(
        session, principal, clock, registration_id, DealAction.WITHDRAW, reason
    )


async def mark_lost(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    reason: str = "",
) -> DealRegistration:
    return await _simple_transition(
        session, principal, clock, registration_id, DealAction.MARK_LOST, reason
    )


async def mark_won(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    reason: str = "",
) -> DealRegistration:
    """An approved deal was won: recorded with a DealWon event in the same transaction."""
    registration = await _simple_transition(
        session, principal, clock, registration_id, DealAction.MARK_WON, reason
    )
    lines = (await repository.lines_of(session, [registration.id]))[registration.id]
    partner = await partners.get_partner(session, registration.partner_id)
    event = DealWon(
        registration_id=registration.id,
        partner_id=registration.partner_id,
        rep_user_id=registration.registered_by_id,
        region=partner.region if partner else "",
        currency=registration.currency,
        amount_minor=registration.estimated_value_minor,
        won_at=clock.now(),
        lines=allocate(registration.estimated_value_minor, lines),
    )
    await record_event(
        session, clock, vendor_id=registration.vendor_id, type=event.type,
        aggregate_id=registration.id, payload=event.to_payload(),
    )  # fmt: skip
    return registration


def allocate(amount_minor: int, lines: Sequence[DealRegistrationLine]) -> list[Line]:
    """Split the deal's value over its lines in proportion to list price x quantity; the
    rounding remainder goes to the last line, so the shares add up exactly."""
    if not lines:
        return []
    weights = [li.unit_list_price_minor * li.quantity for li in lines]
    total = sum(weights)
    shares = [
        (amount_minor * w // total) if total else (amount_minor if i == len(lines) - 1 else 0)
        for i, w in enumerate(weights)
    ]
    shares[-1] += amount_minor - sum(shares)
    return [
        Line(sku=li.sku, units=li.quantity, amount_minor=s)
        for li, s in zip(lines, shares, strict=True)
    ]


# --- approval and protection -------------------------------------------------------------


async def lock_program(
    session: AsyncSession, vendor_id: uuid.UUID, clock: Clock
) -> DealProgramSettings:
    """Serialise approvals of one vendor: bump the settings row (created with the defaults
    when absent). On PostgreSQL the row lock is held until commit; on SQLite the write takes
    the database's write lock, and as the transaction's first statement it waits its turn
    instead of failing on a stale snapshot."""
    dialect = session.get_bind().dialect.name
    values = {"vendor_id": vendor_id, **DEFAULT_SETTINGS, "lock_version": 1}
    bump = {"lock_version": col(DealProgramSettings.lock_version) + 1}
    table = DealProgramSettings.__table__  # type: ignore[attr-defined]
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table).values(values)
    await session.exec(stmt.on_conflict_do_update(index_elements=["vendor_id"], set_=bump))
    settings = await session.get(DealProgramSettings, vendor_id, populate_existing=True)
    assert settings is not None
    return settings


async def approve(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    reason: str = "",
    override_reason: str = "",
) -> DealRegistration:
    """Approve and protect the customer for the vendor's protection period. When another
    registration already protects a conflicting customer, approval needs an override
    reason and grants no protection: one protected registration per customer, always."""
    reason = _reason(reason, required=False)
    override_reason = _reason(override_reason, required=False, name="override_reason")
    if principal.role not in REVIEWERS:
        raise DomainError(Code.NOT_FOUND, "No such deal registration.", "id")
    program = await lock_program(session, principal.vendor_id, clock)
    now = clock.now()
    await expire_due(session, clock, vendor_id=principal.vendor_id)
    registration = await _load(session, principal, registration_id, DealAction.APPROVE)
    current = _check(registration, DealAction.APPROVE, now)
    found = await detect_conflicts(session, registration, program, now, ConflictStage.APPROVAL)
    protecting = [
        other for _row, other in found if other.status is DealStatus.APPROVED and other.is_protected
    ]
    if protecting and not override_reason:
        other = protecting[0]
        partner = await partners.get_partner(session, other.partner_id)
        until = other.expires_at.isoformat() if other.expires_at else "?"
        raise DomainError(
            Code.OVERRIDE_REQUIRED,
            f"{partner.name if partner else 'Another partner'}'s registration for "
            f"{other.customer_name} ({other.customer_domain}) is protected until {until}. "
            "Give an override reason to approve this one without protection.",
            "override_reason",
        )
    registration.status = DealStatus.APPROVED
    registration.approved_at = now
    registration.expires_at = now + timedelta(days=program.protection_days)
    registration.is_protected = not protecting
    registration.decided_at = now
    registration.decided_by_id = principal.user_id
    registration.decision_reason = reason
    registration.override_reason = override_reason if protecting else ""
    registration.updated_at = now
    try:
        async with session.begin_nested():
            session.add(registration)
            await session.flush()
    except IntegrityError as exc:
        if PROTECTED_CUSTOMER_INDEX not in str(exc.orig) and "customer_domain" not in str(exc.orig):
            raise
        raise DomainError(
            Code.OVERRIDE_REQUIRED,
            "Another registration already protects this customer.",
            "override_reason",
        ) from exc
    await _record(session, clock, principal, registration, DealAction.APPROVE, current, reason)
    assert registration.expires_at is not None
    event = DealApproved(
        registration_id=registration.id,
        partner_id=registration.partner_id,
        rep_user_id=registration.registered_by_id,
        customer_domain=registration.customer_domain,
        approved_at=now,
        protected_until=registration.expires_at if registration.is_protected else now,
    )
    await record_event(
        session, clock, vendor_id=registration.vendor_id, type=event.type,
        aggregate_id=registration.id, payload=event.to_payload(),
    )  # fmt: skip
    return registration


# --- extensions --------------------------------------------------------------------------


async def request_extension(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    reason: str,
) -> DealRegistration:
    now = clock.now()
    reason = _reason(reason, required=True)
    registration = await _load(session, principal, registration_id, DealAction.REQUEST_EXTENSION)
    current = _check(registration, DealAction.REQUEST_EXTENSION, now)
    program = await repository.program_settings(session, registration.vendor_id)
    if await repository.pending_extension(session, registration.id) is not None:
        raise DomainError(
            Code.EXTENSION_PENDING, "An extension request is already waiting for review.", "id"
        )
    if registration.extensions_granted >= program.max_extensions:
        raise DomainError(
            Code.EXTENSION_LIMIT_REACHED,
            f"This registration has had the most extensions allowed ({program.max_extensions}).",
            "id",
        )
    session.add(
        DealExtensionRequest(
            vendor_id=registration.vendor_id,
            registration_id=registration.id,
            status=ExtensionStatus.PENDING,
            reason=reason,
            requested_by_id=principal.user_id,
            requested_at=now,
        )
    )
    await _record(
        session, clock, principal, registration, DealAction.REQUEST_EXTENSION, current, reason
    )
    return registration


async def decide_extension(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    registration_id: uuid.UUID,
    grant: bool,
    reason: str = "",
) -> DealRegistration:
    now = clock.now()
    action = DealAction.GRANT_EXTENSION if grant else DealAction.REFUSE_EXTENSION
    reason = _reason(reason, required=not grant)
    registration = await _load(session, principal, registration_id, action)
    current = _check(registration, action, now)
    request = await repository.pending_extension(session, registration.id)
    if request is None:
        raise DomainError(
            Code.NO_PENDING_EXTENSION, "No extension request is waiting for review.", "id"
        )
    program = await repository.program_settings(session, registration.vendor_id)
    if grant:
        if registration.extensions_granted >= program.max_extensions:
            raise DomainError(
                Code.EXTENSION_LIMIT_REACHED,
                f"At most {program.max_extensions} extensions are allowed.",
                "id",
            )
        assert registration.expires_at is not None
        registration.expires_at += timedelta(days=program.extension_days)
        registration.extensions_granted += 1
        registration.updated_at = now
        session.add(registration)
    request.status = ExtensionStatus.GRANTED if grant else ExtensionStatus.REFUSED
    request.decided_by_id = principal.user_id
    request.decided_at = now
    request.decision_reason = reason
    session.add(request)
    await session.flush()
    await _record(session, clock, principal, registration, action, current, reason)
    return registration


# --- expiry ------------------------------------------------------------------------------


async def expire_due(
    session: AsyncSession, clock: Clock, *, vendor_id: uuid.UUID | None = None
) -> int:
    """Write down expiries that the clock has already decided (readers derive them anyway):
    APPROVED registrations whose period has ended become EXPIRED, with a recorded
    transition and a status notice. Safe to run concurrently; returns how many it moved."""
    now = clock.now()
    stmt = select(DealRegistration.id).where(
        DealRegistration.status == DealStatus.APPROVED, col(DealRegistration.expires_at) <= now
    )
    if vendor_id is not None:
        stmt = stmt.where(DealRegistration.vendor_id == vendor_id)
    due = list(await session.exec(stmt))
    moved = 0
    for registration_id in due:
        result = await session.exec(
            update(DealRegistration)
            .where(
                col(DealRegistration.id) == registration_id,
                col(DealRegistration.status) == DealStatus.APPROVED,
            )
            .values(status=DealStatus.EXPIRED, updated_at=now, closed_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            continue  # another sweep got there first
        moved += 1
        registration = await session.get(DealRegistration, registration_id, populate_existing=True)
        assert registration is not None
        await _record(
            session, clock, None, registration, DealAction.EXPIRE, DealStatus.APPROVED,
            "Protection period ended.",
        )  # fmt: skip
    return moved


# --- program settings --------------------------------------------------------------------


@dataclass(frozen=True)
class SettingsChange:
    big_deal_threshold_minor: int | None = None
    currency: str | None = None
    similarity_threshold: int | None = None
    protection_days: int | None = None
    extension_days: int | None = None
    max_extensions: int | None = None
    review_sla_days: int | None = None


SETTING_RANGES = {
    "big_deal_threshold_minor": (0, MAX_VALUE_MINOR),
    "similarity_threshold": (50, 100),
    "protection_days": (1, 730),
    "extension_days": (1, 365),
    "max_extensions": (0, 10),
    "review_sla_days": (1, 60),
}


async def update_settings(
    session: AsyncSession, principal: Principal, clock: Clock, *, change: SettingsChange
) -> DealProgramSettings:
    """Vendor admins change their program's rules; unspecified values stay as they are.
    New values apply to later submissions and approvals."""
    if principal.role is not Role.VENDOR_ADMIN:
        raise DomainError(Code.INVALID_SETTING, "Only vendor admins change the program.")
    errors: list[DomainError] = []
    for name, (low, high) in SETTING_RANGES.items():
        value = getattr(change, name)
        if value is not None and not low <= value <= high:
            errors.append(DomainError(Code.INVALID_SETTING, f"Between {low} and {high}.", name))
    currency = change.currency.strip().upper() if change.currency is not None else None
    if currency is not None and not is_currency(currency):
        errors.append(
            DomainError(Code.INVALID_CURRENCY, "Use an ISO 4217 code like USD.", "currency")
        )
    if errors:
        raise DomainErrors(errors)
    settings = await lock_program(session, principal.vendor_id, clock)
    for name in SETTING_RANGES:
        value = getattr(change, name)
        if value is not None:
            setattr(settings, name, value)
    if currency is not None:
        settings.currency = currency
    settings.updated_at = clock.now()
    settings.updated_by_id = principal.user_id
    session.add(settings)
    await session.flush()
    return settings
