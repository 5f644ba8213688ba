"""Claiming a sale by its serial numbers: each serial judged at once, the claim's first
state from the judgement and the vendor's rules; idempotent per caller."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration import attachments
from deal_registration.sales import repository, risk, serials
from deal_registration.sales.claim_settings import MAX_SERIALS
from deal_registration.sales.credits import credited_serials, take_credits
from deal_registration.sales.errors import SaleClaimErrorCode
from deal_registration.sales.locks import lock_for_write
from deal_registration.sales.models import (
    ClaimState,
    DecisionAction,
    RejectReason,
    SaleClaim,
    SaleClaimSerial,
    SalesSettings,
    SerialOutcome,
)
from deal_registration.sales.policy import SALES, SalesOp
from deal_registration.sales.transitions import store_proofs, transition
from deal_registration.sales.validation import judge
from deal_registration.storage import Storage
from infra import idempotency, limits
from infra.clock import Clock
from infra.errors import DomainError, DomainErrors
from infra.money import is_currency
from infra.text import identifier_problem, name_problem
from partners import repository as partners_repository
from partners.roles import Principal

CREATE_SCOPE = "saleClaimCreate"  # idempotency keys of claim creation
# 10 billion in a 2-decimal currency, as a deal's value: above is a typo (and such sales
# summed in a revenue contest passed the 2**53 its sorted set, a double, holds exactly).
# Defined with the other score limits in infra.limits.
MAX_AMOUNT_MINOR = limits.MAX_SALE_AMOUNT_MINOR


def validate_claim_input(
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
    elif problem := name_problem(customer_name):
        errors.append(DomainError(code.INVALID_CHARACTERS, problem, "customer_name"))
    if not invoice_number:
        errors.append(DomainError(code.REQUIRED, "Give the invoice number.", "invoice_number"))
    elif len(invoice_number) > 64:
        errors.append(DomainError(code.TOO_LONG, "At most 64 characters.", "invoice_number"))
    elif problem := identifier_problem(invoice_number):
        errors.append(DomainError(code.INVALID_CHARACTERS, problem, "invoice_number"))
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
    if not 0 < amount_minor <= MAX_AMOUNT_MINOR:
        errors.append(
            DomainError(
                code.INVALID_AMOUNT,
                "The sale amount must be more than zero and at most 10,000,000,000.",
                "amount.amount",
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
    key_retention: timedelta = idempotency.DEFAULT_RETENTION,
    proof_files: Sequence[attachments.ProofFile] = (),
    max_upload_bytes: int = attachments.DEFAULT_MAX_BYTES,
) -> SaleClaim:
    """A partner user claims a sale. Each serial is judged at once; the claim's state
    follows (see ``initial_state``). With an idempotency key, the same caller's retry of
    the same request returns the first claim and changes nothing (``infra.idempotency``)."""
    SALES.require(principal, SalesOp.CREATE_CLAIM)
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
        key=idempotency_key, now=now, codes=code, retention=key_retention,
        request={
            "partner_id": principal.partner_id,
            "serials": [serials.normalise_serial(s) for s in serial_numbers],
            "customer_name": customer_name, "invoice_number": invoice_number,
            "sale_date": sale_date, "amount_minor": amount_minor, "currency": currency,
            "proof_sha256": attachments.proof_digest(proof_files),
        },
    )  # fmt: skip
    if taken is not None and taken.replay is not None:
        first = await repository.get_readable_claim(session, principal, taken.replay)
        if first is None:
            raise idempotency.gone(code)
        return first
    settings = await repository.get_settings(session, principal.vendor_id)
    normalised, errors = validate_claim_input(
        serial_inputs=serial_numbers, customer_name=customer_name,
        invoice_number=invoice_number, sale_date=sale_date, amount_minor=amount_minor,
        currency=currency, today=now.date(),
        max_serials=min(settings.max_serials_per_claim, MAX_SERIALS),
    )  # fmt: skip
    errors += attachments.proof_errors(proof_files, max_upload_bytes, noun="claim")
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
    credited = await credited_serials(session, principal.vendor_id, normalised)
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
    won = await take_credits(session, claim, valid, now)
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
    stored = await store_proofs(
        session, clock, storage, claim, proof_files, principal, max_upload_bytes
    )
    for attachment in stored:
        flagged = (await risk.assess_attachment(session, claim, attachment, now)) is not None or (
            flagged
        )
    state, action, reason = initial_state(
        list(outcomes.values()), bool(stored), settings, claim, flagged
    )
    submitted = state if action is DecisionAction.SUBMITTED else ClaimState.UNDER_REVIEW
    await transition(
        session, clock, claim, submitted, DecisionAction.SUBMITTED, by=principal.user_id,
        reason=None, note="", initial=True,
    )  # fmt: skip
    if action is not DecisionAction.SUBMITTED:
        await transition(session, clock, claim, state, action, by=None, reason=reason, note="")
    return claim


def initial_state(
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
    if auto_approvable(settings, claim, flagged):
        return ClaimState.AUTO_APPROVED, DecisionAction.AUTO_APPROVED, None
    return ClaimState.UNDER_REVIEW, DecisionAction.SUBMITTED, None


def auto_approvable(settings: SalesSettings, claim: SaleClaim, flagged: bool) -> bool:
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
