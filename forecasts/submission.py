"""Submitting a quarterly forecast (a PARTNER_ADMIN, for its own partner), and the draft
that pre-fills one from the partner's open deals and renewals due.

A forecast may be revised any number of times until its quarter starts; each submission is
kept as a revision (``ForecastRevision``) and the forecast row holds the latest. A quarter
that has started or ended is refused (``QUARTER_STARTED``, ``QUARTER_CLOSED``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings.rounding import apply_bp
from forecasts import product_lines
from forecasts.errors import ForecastErrorCode as Code
from forecasts.models import ForecastRevision, PartnerForecast
from forecasts.pipeline import open_deals
from forecasts.policy import FORECASTS, ForecastOp
from forecasts.quarters import Quarter
from forecasts.renewals import RenewalsDue
from infra.clock import Clock
from infra.codes import is_currency
from infra.errors import DomainError, DomainErrors
from infra.text import free_text_problem
from partners.roles import Principal

MAX_LINES = 50
MAX_AMOUNT_MINOR = 10**15
MAX_NOTE = 1000


@dataclass(frozen=True)
class LineInput:
    product_line: str
    commit_minor: int
    commit_currency: str
    best_case_minor: int
    best_case_currency: str


@dataclass(frozen=True)
class DraftLine:
    product_line: str
    commit_minor: int
    best_case_minor: int
    deals: int
    renewals: int


@dataclass
class Draft:
    quarter: Quarter
    currency: str
    lines: list[DraftLine] = field(default_factory=list)
    renewals_included: bool = False


def parse_quarter(text: str, clock: Clock, *, field_name: str = "quarter") -> Quarter:
    """The quarter, if a forecast for it may still be submitted (it has not started)."""
    quarter = Quarter.parse(text)
    if quarter is None:
        raise DomainError(
            Code.INVALID_QUARTER, "Give the quarter as YYYY-Qn, e.g. 2027-Q1.", field_name
        )
    now = clock.now()
    if now >= quarter.ends_at:
        raise DomainError(Code.QUARTER_CLOSED, f"{quarter} has ended.", field_name)
    if now >= quarter.starts_at:
        raise DomainError(
            Code.QUARTER_STARTED, f"{quarter} has started: forecasts are fixed at its start.",
            field_name,
        )  # fmt: skip
    return quarter


def _currency(currency: str) -> str:
    code = currency.strip().upper()
    if not is_currency(code):
        raise DomainError(
            Code.INVALID_CURRENCY, "Use an ISO 4217 currency code like USD.", "currency"
        )
    return code


async def draft(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    quarter: str,
    currency: str,
    renewals: RenewalsDue | None = None,
) -> Draft:
    """What the partner's open deals closing in the quarter (and renewals due in it, when
    the subscriptions domain is wired) suggest: commit = Σ value × stage probability (and
    renewal amount × renewal probability); best case = Σ full values."""
    FORECASTS.require(principal, ForecastOp.DRAFT)
    q = parse_quarter(quarter, clock)
    code = _currency(currency)
    return await _draft(session, principal, clock, q, code, renewals)


async def _draft(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    quarter: Quarter,
    currency: str,
    renewals: RenewalsDue | None,
) -> Draft:
    partner_id = principal.partner_id
    assert partner_id is not None  # PARTNER_ADMIN only
    deals = await open_deals(
        session, vendor_id=principal.vendor_id, partner_ids=[partner_id], currency=currency,
        now=clock.now(), closing_from=quarter.starts_at.date(),
        closing_before=quarter.ends_at.date(),
    )  # fmt: skip
    weights = await product_lines.deal_line_weights(session, [d.id for d in deals])
    commit: dict[str, int] = defaultdict(int)
    best: dict[str, int] = defaultdict(int)
    deal_count: dict[str, int] = defaultdict(int)
    renewal_count: dict[str, int] = defaultdict(int)
    for deal in deals:
        for line, amount in product_lines.split(deal.value_minor, weights.get(deal.id)).items():
            commit[line] += apply_bp(amount, deal.probability_bp)
            best[line] += amount
            deal_count[line] += 1
    result = Draft(quarter=quarter, currency=currency, renewals_included=renewals is not None)
    if renewals is not None:
        due = await renewals(
            session, vendor_id=principal.vendor_id, partner_id=partner_id,
            start=quarter.starts_at, end=quarter.ends_at,
        )  # fmt: skip
        for renewal in due:
            if renewal.currency != currency:
                continue
            line = product_lines.line_of(renewal.product_line)
            commit[line] += apply_bp(renewal.amount_minor, renewal.probability_bp)
            best[line] += renewal.amount_minor
            renewal_count[line] += 1
    result.lines = [
        DraftLine(line, commit[line], best[line], deal_count[line], renewal_count[line])
        for line in sorted(best)
    ]
    return result


def _check_line(
    i: int, line: LineInput, currency: str, known: dict[str, str], seen: set[str],
    errors: list[DomainError],
) -> dict[str, Any] | None:  # fmt: skip
    at = f"lines.{i}"
    before = len(errors)
    name = known.get(line.product_line.strip().casefold())
    if name is None:
        errors.append(DomainError(
            Code.UNKNOWN_PRODUCT_LINE,
            f"Not one of the vendor's product lines ({', '.join(sorted(known.values()))}).",
            f"{at}.product_line",
        ))  # fmt: skip
    elif name in seen:
        errors.append(DomainError(
            Code.DUPLICATE_PRODUCT_LINE, "Each product line once.", f"{at}.product_line"
        ))  # fmt: skip
    else:
        seen.add(name)
    for key, amount, cur in (
        ("commit", line.commit_minor, line.commit_currency),
        ("best_case", line.best_case_minor, line.best_case_currency),
    ):
        if cur != currency:
            errors.append(DomainError(
                Code.CURRENCY_MISMATCH, f"The forecast is in {currency}.", f"{at}.{key}.currency"
            ))  # fmt: skip
        elif amount < 0:
            errors.append(DomainError(
                Code.NEGATIVE_AMOUNT, "Amounts are zero or more.", f"{at}.{key}.amount"
            ))  # fmt: skip
        elif amount > MAX_AMOUNT_MINOR:
            errors.append(DomainError(
                Code.AMOUNT_TOO_LARGE, "The amount is too large.", f"{at}.{key}.amount"
            ))  # fmt: skip
    if len(errors) == before and line.best_case_minor < line.commit_minor:
        errors.append(DomainError(
            Code.BEST_CASE_BELOW_COMMIT, "The best case is at least the commit.",
            f"{at}.best_case.amount",
        ))  # fmt: skip
    if len(errors) != before or name is None:
        return None
    return {
        "product_line": name,
        "commit_minor": line.commit_minor,
        "best_case_minor": line.best_case_minor,
    }


async def submit(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    quarter: str,
    currency: str,
    lines: list[LineInput],
    prefill: bool = False,
    note: str = "",
    renewals: RenewalsDue | None = None,
) -> PartnerForecast:
    """Submit (or revise) the caller's partner's forecast for a quarter that has not
    started. With ``prefill``, product lines not given take the draft's figures."""
    FORECASTS.require(principal, ForecastOp.SUBMIT)
    partner_id = principal.partner_id
    assert partner_id is not None  # PARTNER_ADMIN only
    q = parse_quarter(quarter, clock)
    code = _currency(currency)
    errors: list[DomainError] = []
    if len(note) > MAX_NOTE:
        errors.append(DomainError(Code.TOO_LONG, f"At most {MAX_NOTE} characters.", "note"))
    elif problem := free_text_problem(note):
        errors.append(DomainError(Code.INVALID_CHARACTERS, problem, "note"))
    if len(lines) > MAX_LINES:
        raise DomainError(Code.TOO_MANY_LINES, f"At most {MAX_LINES} product lines.", "lines")
    known = {
        n.casefold(): n
        for n in await product_lines.vendor_product_lines(session, principal.vendor_id)
    }
    seen: set[str] = set()
    kept = [
        checked
        for i, line in enumerate(lines)
        if (checked := _check_line(i, line, code, known, seen, errors)) is not None
    ]
    if errors:
        raise DomainErrors(errors)
    prefilled = False
    if prefill:
        suggested = await _draft(session, principal, clock, q, code, renewals)
        for dl in suggested.lines:
            if dl.product_line not in seen:
                prefilled = True
                kept.append({
                    "product_line": dl.product_line, "commit_minor": dl.commit_minor,
                    "best_case_minor": dl.best_case_minor,
                })  # fmt: skip
    if not kept:
        raise DomainError(
            Code.NO_LINES, "Give at least one product line (or pre-fill from open deals).", "lines"
        )
    kept.sort(key=lambda ln: str(ln["product_line"]))
    commit = sum(int(ln["commit_minor"]) for ln in kept)
    best = sum(int(ln["best_case_minor"]) for ln in kept)
    if max(commit, best) > MAX_AMOUNT_MINOR:
        raise DomainError(Code.AMOUNT_TOO_LARGE, "The forecast's total is too large.", "lines")
    now = clock.now()
    found = await session.exec(
        select(PartnerForecast)
        .where(PartnerForecast.partner_id == partner_id, PartnerForecast.quarter == q.key)
        .with_for_update()
    )
    forecast = found.first()
    if forecast is None:
        forecast = PartnerForecast(
            vendor_id=principal.vendor_id, partner_id=partner_id, quarter=q.key, currency=code,
            commit_minor=commit, best_case_minor=best, lines=kept, revision=1, created_at=now,
            updated_at=now,
        )  # fmt: skip
    else:
        forecast.currency = code
        forecast.commit_minor = commit
        forecast.best_case_minor = best
        forecast.lines = kept
        forecast.revision += 1
        forecast.updated_at = now
    session.add(forecast)
    await session.flush()
    session.add(
        ForecastRevision(
            vendor_id=principal.vendor_id,
            partner_id=partner_id,
            forecast_id=forecast.id,
            number=forecast.revision,
            currency=code,
            commit_minor=commit,
            best_case_minor=best,
            lines=kept,
            prefilled=prefilled,
            note=note.strip(),
            submitted_by_id=principal.user_id,
            submitted_at=now,
        )  # fmt: skip
    )
    await session.flush()
    return forecast
