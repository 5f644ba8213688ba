"""Sale claims: submission with instant serial-by-serial judgement, proof, review decisions,
reversal, and the vendor's claim settings.

Every state change writes a decision row (who, when, why), a ``SaleClaimStateChanged``
notice for live subscribers, and — on approval and reversal — the ``SaleApproved`` /
``SaleReversed`` event of ``deal_registration.events``, all in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration import attachments
from deal_registration.events import Line, SaleApproved, SaleReversed
from deal_registration.sales import repository, risk, serials
from deal_registration.sales.errors import SaleClaimErrorCode
from deal_registration.sales.locks import lock_for_write
from deal_registration.sales.models import (
    CREDITED_STATES,
    OPEN_STATES,
    ClaimState,
    DecisionAction,
    RejectReason,
    ReverseReason,
    SaleClaim,
    SaleClaimDecision,
    SaleClaimSerial,
    SalesSettings,
    Serial,
    SerialCredit,
    SerialOutcome,
)
from deal_registration.sales.validation import judge
from deal_registration.storage import Storage
from infra import idempotency
from infra.clock import Clock
from infra.errors import DomainError, DomainErrors
from infra.money import is_currency
from infra.outbox import record_event
from partners import repository as partners_repository
from partners.roles import Principal

CLAIM_STATE_CHANGED = "SaleClaimStateChanged"
CREATE_SCOPE = "saleClaimCreate"  # idempotency keys of claim creation
MAX_SERIALS = 500
MAX_NOTE = 2000


async def _may_see_claim(session: AsyncSession, principal: Principal, claim_id: uuid.UUID) -> bool:
    return await repository.get_readable_claim(session, principal, claim_id) is not None


attachments.register_owner(repository.CLAIM_OWNER, _may_see_claim)


@dataclass(frozen=True)
class SerialCheck:
    serial: str
    outcome: SerialOutcome
    found: Serial | None


async def lookup_serial(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    serial: str,
    sale_date: date | None = None,
) -> SerialCheck:
    """How a serial would be judged if the caller claimed it now."""
    normalised = serials.normalise_serial(serial)
    if not serials.is_well_formed(normalised):
        return SerialCheck(normalised, SerialOutcome.UNKNOWN_SERIAL, None)
    settings = await repository.get_settings(session, principal.vendor_id)
    found = (await serials.get_serials(session, principal.vendor_id, [normalised])).get(normalised)
    credited = await _credited(session, principal.vendor_id, [normalised])
    outcome = judge(
        found,
        partner_id=principal.partner_id,
        sale_date=sale_date,
        today=clock.now().date(),
        claim_window_days=settings.claim_window_days,
        already_credited=normalised in credited,
    )
    visible = outcome not in (
        SerialOutcome.UNKNOWN_SERIAL,
        SerialOutcome.NOT_SHIPPED_TO_YOUR_CHANNEL,
    )
    return SerialCheck(normalised, outcome, found if visible or principal.is_vendor_staff else None)


async def _credited(session: AsyncSession, vendor_id: uuid.UUID, wanted: list[str]) -> set[str]:
    if not wanted:
        return set()
    rows = await session.exec(
        select(SerialCredit.serial).where(
            SerialCredit.vendor_id == vendor_id, col(SerialCredit.serial).in_(wanted)
        )
    )
    return set(rows)


def _validate_claim_input(
    *,
    serial_inputs: list[str],
    customer_name: str,
    invoice_number: str,
    sale_date: date,
    amount_minor: int,
    currency: str,
    today: date,
    max_serials: int,
) -> tuple[list[str], list[DomainError]]:
    errors: list[DomainError] = []
    code = SaleClaimErrorCode
    if not customer_name:
        errors.append(DomainError(code.REQUIRED, "Name the customer.", "customer_name"))
    elif len(customer_name) > 200:
        errors.append(DomainError(code.TOO_LONG, "At most 200 characters.", "customer_name"))
    if not invoice_number:
        errors.append(DomainError(code.REQUIRED, "Give the invoice number.", "invoice_number"))
    elif len(invoice_number) > 64:
        errors.append(DomainError(code.TOO_LONG, "At most 64 characters.", "invoice_number"))
    normalised: list[str] = []
    if not serial_inputs:
        errors.append(DomainError(code.NO_SERIALS, "Claim at least one serial.", "serials"))
    elif len(serial_inputs) > max_serials:
        errors.append(
            DomainError(
                code.TOO_MANY_SERIALS,
                f"A claim has at most {max_serials} serials; split it.",
                "serials",
            )
        )
    else:
        seen: dict[str, int] = {}
        for index, raw in enumerate(serial_inputs):
            serial = serials.normalise_serial(raw)
            if not serials.is_well_formed(serial):
                errors.append(
                    DomainError(
                        code.MALFORMED_SERIAL,
                        f"{raw[:80]!r} is not a serial number (3-64 letters and digits).",
                        f"serials.{index}",
                    )
                )
            elif serial in seen:
                errors.append(
                    DomainError(
                        code.DUPLICATE_SERIAL,
                        f"{serial} is listed twice (also at position {seen[serial]}).",
                        f"serials.{index}",
                    )
                )
            else:
                seen[serial] = index
            normalised.append(serial)
    if sale_date > today:
        errors.append(
            DomainError(code.SALE_DATE_IN_FUTURE, "The sale date is in the future.", "sale_date")
        )
    if not is_currency(currency):
        errors.append(
            DomainError(code.INVALID_CURRENCY, "Use an ISO 4217 code like USD.", "amount.currency")
        )
    if amount_minor <= 0:
        errors.append(
            DomainError(
                code.INVALID_AMOUNT, "The sale amount must be more than zero.", "amount.amount"
            )
        )
    return normalised, errors


async def create_claim(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    storage: Storage,
    *,
    serial_numbers: list[str],
    customer_name: str,
    invoice_number: str,
    sale_date: date,
    amount_minor: int,
    currency: str,
    partner_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    proof_file: attachments.ProofFile | None = None,
    max_upload_bytes: int = attachments.DEFAULT_MAX_BYTES,
) -> SaleClaim:
    """A partner user claims a sale. Each serial is judged at once; the claim's state
    follows (see ``_initial_state``). With an idempotency key, the same caller's retry of
    the same request returns the first claim and changes nothing (``infra.idempotency``)."""
    code = SaleClaimErrorCode
    if principal.partner_id is None or principal.user_id is None:
        raise DomainError(code.NOT_FOUND, "Only partner users claim sales.", "partner_id")
    if partner_id is not None and partner_id != principal.partner_id:
        raise DomainError(code.NOT_FOUND, "No such partner.", "partner_id")
    await lock_for_write(session)
    now = clock.now()
    customer_name, invoice_number = customer_name.strip(), invoice_number.strip()
    currency = currency.strip().upper()
    taken = await idempotency.take(
        session, vendor_id=principal.vendor_id, caller=principal.caller, scope=CREATE_SCOPE,
        key=idempotency_key, now=now, codes=code,
        request={
            "partner_id": principal.partner_id,
            "serials": [serials.normalise_serial(s) for s in serial_numbers],
            "customer_name": customer_name, "invoice_number": invoice_number,
            "sale_date": sale_date, "amount_minor": amount_minor, "currency": currency,
            "proof_sha256": hashlib.sha256(proof_file.data).hexdigest() if proof_file else None,
        },
    )  # fmt: skip
    if taken is not None and taken.replay is not None:
        first = await repository.get_readable_claim(session, principal, taken.replay)
        if first is None:
            raise DomainError(code.NOT_FOUND, "No such sale claim.", "idempotency_key")
        return first
    settings = await repository.get_settings(session, principal.vendor_id)
    normalised, errors = _validate_claim_input(
        serial_inputs=serial_numbers, customer_name=customer_name,
        invoice_number=invoice_number, sale_date=sale_date, amount_minor=amount_minor,
        currency=currency, today=now.date(),
        max_serials=min(settings.max_serials_per_claim, MAX_SERIALS),
    )  # fmt: skip
    if proof_file is not None:
        try:
            attachments.check_proof(proof_file, max_upload_bytes)
        except DomainError as error:
            errors.append(error)
    if errors:
        raise DomainErrors(errors)

    partner = await partners_repository.get_partner(session, principal.partner_id)
    assert partner is not None
    claim = SaleClaim(
        vendor_id=principal.vendor_id, partner_id=principal.partner_id,
        rep_user_id=principal.user_id, customer_name=customer_name,
        invoice_number=invoice_number, sale_date=sale_date, amount_minor=amount_minor,
        currency=currency, region=partner.region, state=ClaimState.UNDER_REVIEW,
        created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(claim)
    await session.flush()
    if taken is not None:
        await taken.done(session, claim.id)

    found = await serials.get_serials(session, principal.vendor_id, normalised)
    credited = await _credited(session, principal.vendor_id, normalised)
    outcomes = {
        serial: judge(
            found.get(serial),
            partner_id=principal.partner_id,
            sale_date=sale_date,
            today=now.date(),
            claim_window_days=settings.claim_window_days,
            already_credited=serial in credited,
        )
        for serial in normalised
    }
    valid = [s for s in normalised if outcomes[s] is SerialOutcome.VALID]
    won = await _take_credits(session, claim, valid, now)
    for serial in valid:
        if serial not in won:
            outcomes[serial] = SerialOutcome.ALREADY_CLAIMED  # lost a race to another claim
    for position, serial in enumerate(normalised):
        row = found.get(serial)
        visible = outcomes[serial] not in (
            SerialOutcome.UNKNOWN_SERIAL,
            SerialOutcome.NOT_SHIPPED_TO_YOUR_CHANNEL,
        )
        session.add(
            SaleClaimSerial(
                claim_id=claim.id,
                serial=serial,
                outcome=outcomes[serial],
                position=position,
                sku=row.sku if row is not None and visible else None,
            )  # fmt: skip
        )
    await session.flush()

    flagged = bool(
        await risk.assess_claim(session, claim, [found[s] for s in normalised if s in won], now)
    )
    attachment = None
    if proof_file is not None:
        attachment = await _attach(
            session, clock, storage, claim, proof_file, principal, max_upload_bytes
        )
        flagged = (await risk.assess_attachment(session, claim, attachment, now)) is not None or (
            flagged
        )
    state, action, reason = _initial_state(
        list(outcomes.values()), attachment is not None, settings, claim, flagged
    )
    submitted = state if action is DecisionAction.SUBMITTED else ClaimState.UNDER_REVIEW
    await _transition(
        session, clock, claim, submitted, DecisionAction.SUBMITTED, by=principal.user_id,
        reason=None, note="", initial=True,
    )  # fmt: skip
    if action is not DecisionAction.SUBMITTED:
        await _transition(session, clock, claim, state, action, by=None, reason=reason, note="")
    return claim


def _initial_state(
    outcomes: list[SerialOutcome],
    has_proof: bool,
    settings: SalesSettings,
    claim: SaleClaim,
    flagged: bool,
) -> tuple[ClaimState, DecisionAction, str | None]:
    valid = sum(1 for o in outcomes if o is SerialOutcome.VALID)
    if valid == 0:
        return ClaimState.REJECTED, DecisionAction.AUTO_REJECTED, RejectReason.NO_VALID_SERIALS
    if valid < len(outcomes):
        return ClaimState.UNDER_REVIEW, DecisionAction.SUBMITTED, None
    if settings.proof_required and not has_proof:
        return ClaimState.NEEDS_PROOF, DecisionAction.SUBMITTED, None
    if _auto_approvable(settings, claim, flagged):
        return ClaimState.AUTO_APPROVED, DecisionAction.AUTO_APPROVED, None
    return ClaimState.UNDER_REVIEW, DecisionAction.SUBMITTED, None


def _auto_approvable(settings: SalesSettings, claim: SaleClaim, flagged: bool) -> bool:
    return (
        not flagged
        and claim.currency == settings.auto_approve_currency
        and claim.amount_minor <= settings.auto_approve_limit_minor
    )


async def claim_by_idempotency_key(
    session: AsyncSession, principal: Principal, key: str
) -> SaleClaim | None:
    """The caller's first claim under ``key``, whatever that request was."""
    first = await idempotency.first_result(
        session, vendor_id=principal.vendor_id, caller=principal.caller, scope=CREATE_SCOPE,
        key=key,
    )  # fmt: skip
    return await repository.get_readable_claim(session, principal, first) if first else None


async def _take_credits(
    session: AsyncSession, claim: SaleClaim, wanted: list[str], now: datetime
) -> set[str]:
    """Insert one credit row per serial; the unique (vendor, serial) constraint decides who
    gets a serial when claims race. Returns the serials this claim got. Rows go in serial
    order, so two claims sharing several serials wait for each other instead of
    deadlocking."""
    if not wanted:
        return set()
    connection = await session.connection()
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    rows = [
        {
            "id": uuid.uuid4(),
            "vendor_id": claim.vendor_id,
            "serial": serial,
            "claim_id": claim.id,
            "partner_id": claim.partner_id,
            "created_at": now,
        }  # fmt: skip
        for serial in sorted(wanted)
    ]
    statement = (
        insert(SerialCredit)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["vendor_id", "serial"])
        .returning(col(SerialCredit.serial))
    )
    result = await session.execute(statement)
    return {row[0] for row in result}


async def _attach(
    session: AsyncSession,
    clock: Clock,
    storage: Storage,
    claim: SaleClaim,
    file: attachments.ProofFile,
    principal: Principal,
    max_upload_bytes: int,
) -> attachments.Attachment:
    return await attachments.store_attachment(
        session, clock, storage, vendor_id=claim.vendor_id, owner_kind=repository.CLAIM_OWNER,
        owner_id=claim.id, file=file, uploaded_by_id=principal.user_id,
        max_bytes=max_upload_bytes,
    )  # fmt: skip


async def _transition(
    session: AsyncSession,
    clock: Clock,
    claim: SaleClaim,
    to_state: ClaimState,
    action: DecisionAction,
    *,
    by: uuid.UUID | None,
    reason: str | None,
    note: str,
    initial: bool = False,
) -> None:
    now = clock.now()
    from_state = None if initial else claim.state
    claim.state = to_state
    claim.updated_at = now
    if to_state is ClaimState.REJECTED:
        claim.reject_reason = RejectReason(reason) if reason else RejectReason.OTHER
        await session.execute(delete(SerialCredit).where(col(SerialCredit.claim_id) == claim.id))
    session.add(claim)
    session.add(
        SaleClaimDecision(
            claim_id=claim.id,
            action=action,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            note=note,
            decided_by_id=by,
            decided_at=now,
        )  # fmt: skip
    )
    await session.flush()
    if to_state in CREDITED_STATES and from_state not in CREDITED_STATES:
        approved = await _sale_approved(session, claim, now)
        event = await record_event(
            session, clock, vendor_id=claim.vendor_id, type=approved.type,
            aggregate_id=claim.id, payload=approved.to_payload(), occurred_at=now,
        )  # fmt: skip
        claim.approved_event_id = event.id
        session.add(claim)
    if to_state is ClaimState.REVERSED:
        assert claim.approved_event_id is not None
        approved = await _sale_approved(session, claim, now)
        reversed_ = SaleReversed(
            claim_id=claim.id, partner_id=claim.partner_id, rep_user_id=claim.rep_user_id,
            region=claim.region, currency=claim.currency, amount_minor=claim.amount_minor,
            reverses_event_id=claim.approved_event_id, reason=reason or "",
            lines=approved.lines, sold_at=approved.sold_at, reversed_at=now,
        )  # fmt: skip
        await record_event(
            session, clock, vendor_id=claim.vendor_id, type=reversed_.type,
            aggregate_id=claim.id, payload=reversed_.to_payload(), occurred_at=now,
        )  # fmt: skip
    await record_event(
        session, clock, vendor_id=claim.vendor_id, type=CLAIM_STATE_CHANGED,
        aggregate_id=claim.id,
        payload={"claim_id": str(claim.id), "partner_id": str(claim.partner_id),
                 "rep_user_id": str(claim.rep_user_id), "state": to_state.value},
        occurred_at=now,
    )  # fmt: skip


async def approved_sale(session: AsyncSession, claim: SaleClaim) -> SaleApproved:
    """The sale an approved claim credits (as its SaleApproved event carries it)."""
    return await _sale_approved(session, claim, claim.updated_at)


async def _sale_approved(session: AsyncSession, claim: SaleClaim, now: datetime) -> SaleApproved:
    """The credit a claim carries: its valid serials, per SKU, with the amount shared out
    by units (the remainder on the first line, so the lines add up exactly)."""
    lines_serials = await repository.claim_serials(session, claim.id)
    units = Counter(
        s.sku or "" for s in lines_serials if s.outcome is SerialOutcome.VALID and s.sku
    )
    total = sum(units.values())
    lines: list[Line] = []
    for sku, count in sorted(units.items()):
        lines.append(Line(sku=sku, units=count, amount_minor=claim.amount_minor * count // total))
    if lines:
        rest = claim.amount_minor - sum(line.amount_minor for line in lines)
        first = lines[0]
        lines[0] = Line(sku=first.sku, units=first.units, amount_minor=first.amount_minor + rest)
    return SaleApproved(
        claim_id=claim.id, partner_id=claim.partner_id, rep_user_id=claim.rep_user_id,
        region=claim.region, currency=claim.currency, amount_minor=claim.amount_minor,
        lines=lines, sold_at=datetime.combine(claim.sale_date, time(0), UTC), approved_at=now,
    )  # fmt: skip


async def attach_proof(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    storage: Storage,
    *,
    claim_id: uuid.UUID,
    proof_file: attachments.ProofFile,
    max_upload_bytes: int = attachments.DEFAULT_MAX_BYTES,
) -> SaleClaim:
    """Add proof to a claim; a claim waiting for proof moves on (auto-approved when it
    qualifies, else to review)."""
    await lock_for_write(session)
    claim = await _locked(session, repository.readable_claims(principal), claim_id)
    if claim.state in (ClaimState.REJECTED, ClaimState.REVERSED):
        raise DomainError(
            SaleClaimErrorCode.INVALID_STATE,
            f"A {claim.state.value.lower()} claim takes no more proof.",
            "claim_id",
        )
    attachments.check_proof(proof_file, max_upload_bytes)
    await attachments.ensure_room(session, repository.CLAIM_OWNER, claim.id, noun="claim")
    now = clock.now()
    attachment = await _attach(
        session, clock, storage, claim, proof_file, principal, max_upload_bytes
    )
    await risk.assess_attachment(session, claim, attachment, now)
    if claim.state is ClaimState.NEEDS_PROOF:
        settings = await repository.get_settings(session, claim.vendor_id)
        flagged = await risk.has_flags(session, claim.id)
        all_valid = all(
            s.outcome is SerialOutcome.VALID
            for s in await repository.claim_serials(session, claim.id)
        )
        asked_by_reviewer = any(
            d.action is DecisionAction.PROOF_REQUESTED
            for d in await repository.claim_decisions(session, claim.id)
        )
        to_state = (
            ClaimState.AUTO_APPROVED
            if all_valid and not asked_by_reviewer and _auto_approvable(settings, claim, flagged)
            else ClaimState.UNDER_REVIEW
        )
        await _transition(
            session, clock, claim, to_state, DecisionAction.PROOF_ADDED, by=principal.user_id,
            reason=None, note="",
        )  # fmt: skip
    return claim


async def _locked(session: AsyncSession, statement: object, claim_id: uuid.UUID) -> SaleClaim:
    stmt = statement.where(SaleClaim.id == claim_id).with_for_update()  # type: ignore[attr-defined]
    claim: SaleClaim | None = (await session.exec(stmt)).first()
    if claim is None:
        raise DomainError(SaleClaimErrorCode.NOT_FOUND, "No such sale claim.", "id")
    return claim


def _note(note: str) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise DomainError(SaleClaimErrorCode.TOO_LONG, f"At most {MAX_NOTE} characters.", "note")
    return note


async def _decide(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    claim_id: uuid.UUID,
    allowed_from: frozenset[ClaimState],
    to_state: ClaimState,
    action: DecisionAction,
    reason: str | None,
    note: str,
) -> SaleClaim:
    note = _note(note)
    await lock_for_write(session)
    claim = await _locked(session, repository.reviewable_claims(principal), claim_id)
    if claim.state not in allowed_from:
        raise DomainError(
            SaleClaimErrorCode.INVALID_STATE,
            f"The claim is {claim.state.value}; this decision needs it "
            f"{' or '.join(sorted(s.value for s in allowed_from))}.",
            "id",
        )
    await _transition(
        session, clock, claim, to_state, action, by=principal.user_id, reason=reason, note=note
    )
    return claim


async def approve(
    session: AsyncSession, principal: Principal, clock: Clock, *, claim_id: uuid.UUID,
    note: str = "",
) -> SaleClaim:  # fmt: skip
    return await _decide(
        session, principal, clock, claim_id=claim_id, allowed_from=OPEN_STATES,
        to_state=ClaimState.APPROVED, action=DecisionAction.APPROVED, reason=None, note=note,
    )  # fmt: skip


async def reject(
    session: AsyncSession, principal: Principal, clock: Clock, *, claim_id: uuid.UUID,
    reason: RejectReason, note: str = "",
) -> SaleClaim:  # fmt: skip
    return await _decide(
        session, principal, clock, claim_id=claim_id, allowed_from=OPEN_STATES,
        to_state=ClaimState.REJECTED, action=DecisionAction.REJECTED, reason=reason.value,
        note=note,
    )  # fmt: skip


async def request_proof(
    session: AsyncSession, principal: Principal, clock: Clock, *, claim_id: uuid.UUID,
    note: str = "",
) -> SaleClaim:  # fmt: skip
    return await _decide(
        session, principal, clock, claim_id=claim_id,
        allowed_from=frozenset({ClaimState.UNDER_REVIEW}), to_state=ClaimState.NEEDS_PROOF,
        action=DecisionAction.PROOF_REQUESTED, reason=None, note=note,
    )  # fmt: skip


async def reverse(
    session: AsyncSession, principal: Principal, clock: Clock, *, claim_id: uuid.UUID,
    reason: ReverseReason, note: str = "",
) -> SaleClaim:  # fmt: skip
    claim = await _decide(
        session, principal, clock, claim_id=claim_id, allowed_from=CREDITED_STATES,
        to_state=ClaimState.REVERSED, action=DecisionAction.REVERSED, reason=reason.value,
        note=note,
    )  # fmt: skip
    claim.reverse_reason = reason
    session.add(claim)
    await session.flush()
    return claim


async def update_settings(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    claim_window_days: int | None = None,
    auto_approve_limit_minor: int | None = None,
    auto_approve_currency: str | None = None,
    proof_required: bool | None = None,
    max_serials_per_claim: int | None = None,
) -> SalesSettings:
    """Change the vendor's claim rules (vendor admins; checked by the caller). Unset
    arguments keep their current value."""
    code = SaleClaimErrorCode.INVALID_SETTING
    errors: list[DomainError] = []
    if claim_window_days is not None and not 1 <= claim_window_days <= 3650:
        errors.append(DomainError(code, "Between 1 and 3650 days.", "claim_window_days"))
    if auto_approve_limit_minor is not None and not 0 <= auto_approve_limit_minor <= 10**13:
        errors.append(
            DomainError(
                code, "Zero or more (zero turns auto-approval off).", "auto_approve_limit.amount"
            )
        )
    if auto_approve_currency is not None:
        auto_approve_currency = auto_approve_currency.strip().upper()
        if not is_currency(auto_approve_currency):
            errors.append(
                DomainError(code, "Use an ISO 4217 code like USD.", "auto_approve_limit.currency")
            )
    if max_serials_per_claim is not None and not 1 <= max_serials_per_claim <= MAX_SERIALS:
        errors.append(DomainError(code, f"Between 1 and {MAX_SERIALS}.", "max_serials_per_claim"))
    if errors:
        raise DomainErrors(errors)
    await lock_for_write(session)
    found = await session.get(SalesSettings, principal.vendor_id)
    settings = found or repository.default_settings(principal.vendor_id)
    if claim_window_days is not None:
        settings.claim_window_days = claim_window_days
    if auto_approve_limit_minor is not None:
        settings.auto_approve_limit_minor = auto_approve_limit_minor
    if auto_approve_currency is not None:
        settings.auto_approve_currency = auto_approve_currency
    if proof_required is not None:
        settings.proof_required = proof_required
    if max_serials_per_claim is not None:
        settings.max_serials_per_claim = max_serials_per_claim
    settings.updated_at = clock.now()
    settings.updated_by_id = principal.user_id
    session.add(settings)
    await session.flush()
    return settings
