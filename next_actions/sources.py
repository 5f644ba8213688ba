"""The built-in sources of next best actions. Each reads through the domain's own readable
statement as the viewpoint's principal, so an action never shows a record its reader could
not open (a rep: its own claims and deals; holds are organisation-level and finance's to
explain, so a rep gets none, as in earnings)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import ColumnElement, true
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.registrations.models import DealRegistration, DealStatus
from deal_registration.registrations.repository import readable_registrations
from deal_registration.sales.models import ClaimState, SaleClaim
from deal_registration.sales.repository import readable_claims
from earnings import service as earnings
from earnings.models import HoldReason, PayoutHold, PayoutStatement
from earnings.payouts import hold_explanation
from earnings.repository import Scope, readable_holds
from earnings.rounding import format_bp
from incentives.recommendations import active_recommendations
from infra.money import Money
from leaderboards.models import Contest, ContestStatus, ParticipantKind, VisibilityMode
from leaderboards.reads import Reader, Viewer
from leaderboards.repository import readable_contests
from leaderboards.service import effective_status
from next_actions.actions import ActionKind, NextAction, Source, Viewpoint

PROTECTION_WARNING = timedelta(days=14)  # a protected deal "about to expire"
PRIZE_REACH_SHARE = 0.25  # a prize "within reach": behind its line by at most a quarter of it
MAX_PER_SOURCE = 20


def _m(amount: int, currency: str) -> str:
    return Money(amount, currency).format()


async def next_tier(session: AsyncSession, view: Viewpoint) -> list[NextAction]:
    currency = await earnings.default_currency(session, view.vendor_id)
    scope = Scope(view.vendor_id, view.partner_id)
    status = await earnings.tier_status(session, scope, currency, view.now, view.signals)
    if status is None or status.next_tier is None or status.amount_to_next_minor is None:
        return []
    changes_at = await earnings.tier_moves_at(
        session, scope, currency, view.now, status, view.signals
    )
    nxt = status.next_tier
    gain = nxt.uplift_bp - (status.tier.uplift_bp if status.tier else 0)
    more = _m(status.amount_to_next_minor, currency)
    return [NextAction(
        key=f"{ActionKind.NEXT_TIER}:{status.program_name}:{nxt.name}",
        kind=ActionKind.NEXT_TIER,
        title=f"Sell {more} more to reach {nxt.name}",
        why=f"Your {status.window_days}-day qualified revenue is "
        f"{_m(status.qualified_revenue_minor, currency)}; {nxt.name} starts at "
        f"{_m(nxt.threshold_minor, currency)}"
        + (f" and adds +{format_bp(gain)} on every sale." if gain > 0 else "."),
        amount_minor=status.amount_to_next_minor, currency=currency, link="/earnings",
        changes_at=changes_at,
    )]  # fmt: skip


async def holds_needing_a_document(session: AsyncSession, view: Viewpoint) -> list[NextAction]:
    readable = readable_holds(view.principal).subquery()
    rows = await session.exec(
        select(PayoutHold, PayoutStatement)
        .join(PayoutStatement, col(PayoutStatement.id) == col(PayoutHold.statement_id))
        .where(
            col(PayoutHold.id).in_(select(readable.c.id)),
            PayoutHold.partner_id == view.partner_id,
            col(PayoutHold.released_at).is_(None),
            PayoutHold.reason == HoldReason.MISSING_TAX_FORM,
        )
        .order_by(col(PayoutHold.id))
        .limit(MAX_PER_SOURCE)
    )
    out = []
    for hold, statement in rows:
        why, clears = hold_explanation(hold)
        month = f"{statement.period_start:%B %Y}"
        out.append(NextAction(
            key=f"{ActionKind.HOLD_NEEDS_DOCUMENT}:{hold.id}",
            kind=ActionKind.HOLD_NEEDS_DOCUMENT,
            title=f"Send your tax form to release {_m(statement.total_minor, statement.currency)}",
            why=f"Your payout for {month} is held. {why} {clears}",
            amount_minor=statement.total_minor, currency=statement.currency,
            link="/payouts", code=str(statement.id), subject_type="PayoutStatement",
            subject_id=statement.id,
        ))  # fmt: skip
    return out


async def claims_needing_proof(session: AsyncSession, view: Viewpoint) -> list[NextAction]:
    rows = await session.exec(
        readable_claims(view.principal)
        .where(SaleClaim.partner_id == view.partner_id, SaleClaim.state == ClaimState.NEEDS_PROOF)
        .order_by(col(SaleClaim.created_at), col(SaleClaim.id))
        .limit(MAX_PER_SOURCE)
    )
    return [
        NextAction(
            key=f"{ActionKind.CLAIM_NEEDS_PROOF}:{claim.id}",
            kind=ActionKind.CLAIM_NEEDS_PROOF,
            title=f"Upload proof for invoice {claim.invoice_number}",
            why=f"Your claim for the sale to {claim.customer_name} "
            f"({_m(claim.amount_minor, claim.currency)}) waits for proof (the invoice) before "
            "it can be reviewed and earn.",
            amount_minor=claim.amount_minor,
            currency=claim.currency,
            link=f"/claims/{claim.id}",
            code=claim.invoice_number,
            subject_type="SaleClaim",
            subject_id=claim.id,
        )  # fmt: skip
        for claim in rows
    ]


async def expiring_protections(session: AsyncSession, view: Viewpoint) -> list[NextAction]:
    rows = await session.exec(
        readable_registrations(view.principal)
        .where(
            DealRegistration.partner_id == view.partner_id,
            DealRegistration.status == DealStatus.APPROVED,
            col(DealRegistration.is_protected).is_(True),
            col(DealRegistration.expires_at) > view.now,
            col(DealRegistration.expires_at) <= view.now + PROTECTION_WARNING,
        )
        .order_by(col(DealRegistration.expires_at), col(DealRegistration.id))
        .limit(MAX_PER_SOURCE)
    )
    out = []
    for deal in rows:
        assert deal.expires_at is not None
        days = max((deal.expires_at - view.now).days, 0)
        when = "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"
        out.append(NextAction(
            key=f"{ActionKind.DEAL_PROTECTION_EXPIRING}:{deal.id}",
            kind=ActionKind.DEAL_PROTECTION_EXPIRING,
            title=f"Close or extend your deal with {deal.customer_name}",
            why=f"Your protection on the {deal.customer_name} deal "
            f"({_m(deal.estimated_value_minor, deal.currency)}) ends {when}, on "
            f"{deal.expires_at:%d %b %Y}; after that another partner may register it. Mark it "
            "won or ask for an extension before then.",
            due_at=deal.expires_at, amount_minor=deal.estimated_value_minor,
            currency=deal.currency, link=f"/deals/{deal.id}", subject_type="DealRegistration",
            subject_id=deal.id,
        ))  # fmt: skip
    return out


def _prize_line(contest: Contest) -> tuple[int, str] | None:
    """The last rank that wins a prize, and that prize."""
    best: tuple[int, str] | None = None
    for prize in contest.prizes:
        to_rank = int(prize.get("to_rank") or prize.get("from_rank") or 0)
        if to_rank > 0 and (best is None or to_rank > best[0]):
            best = (to_rank, str(prize.get("prize") or "a prize"))
    return best


def _asker_reads(view: Viewpoint) -> ColumnElement[bool]:
    """The contest is one the asker may read too (vendor staff reading as the partner)."""
    if view.asker is None:
        return true()
    return col(Contest.id).in_(readable_contests(view.asker).with_only_columns(col(Contest.id)))


def _participant(view: Viewpoint, contest: Contest) -> uuid.UUID | None:
    if contest.participant_kind is ParticipantKind.PARTNER:
        return view.partner_id
    return view.principal.user_id if view.principal.is_partner else None


async def _prize_contests(
    session: AsyncSession, view: Viewpoint
) -> list[tuple[Contest, int, str, uuid.UUID, int | None]]:
    """Live contests with prizes the viewpoint takes part in and whose prize line it may see:
    each with its last prize rank, that prize, the participant and the board's visible top."""
    contests = await session.exec(
        readable_contests(view.principal)
        .where(Contest.status == ContestStatus.SCHEDULED, _asker_reads(view))
        .order_by(col(Contest.ends_at), col(Contest.id))
        .limit(MAX_PER_SOURCE)
    )
    out = []
    for contest in contests:
        line = _prize_line(contest)
        me = _participant(view, contest)
        if line is None or me is None:
            continue
        if effective_status(contest, view.now) is not ContestStatus.LIVE:
            continue
        last_rank, prize = line
        top_n = contest.visible_top_n if contest.visibility is VisibilityMode.TOP_N else None
        if top_n is not None and last_rank > top_n:
            continue
        out.append((contest, last_rank, prize, me, top_n))
    return out


async def watched_contests(session: AsyncSession, view: Viewpoint) -> list[uuid.UUID]:
    """The contests whose standings ``prizes_in_reach`` reads: other participants' scores
    move its gap (or bring the prize into or out of reach), so a live list listens to their
    boards too."""
    return [contest.id for contest, *_ in await _prize_contests(session, view)]


async def prizes_in_reach(session: AsyncSession, view: Viewpoint) -> list[NextAction]:
    """Running contests with prizes where the participant is outside the prizes but behind
    the last prize place by at most ``PRIZE_REACH_SHARE`` of that place's score; read with
    the participant's own board visibility (a TOP_N board hides the line beyond its top)."""
    reader = Reader(view.leaderboards, session)
    out = []
    for contest, last_rank, prize, me, top_n in await _prize_contests(session, view):
        viewer = Viewer(view.principal, me, top_n, contest.anonymise)
        standing = (await reader.standing(contest, viewer, me, None)).standing
        if standing.rank <= last_rank and standing.on_board:
            continue
        board = await reader.board(contest, viewer, None, last_rank - 1, 1)
        if not board.rows:
            continue  # fewer participants than prizes: nothing to catch up with
        target = board.rows[0].score
        gap = target - standing.score
        if gap <= 0 or gap > target * PRIZE_REACH_SHARE:
            continue
        out.append(NextAction(
            key=f"{ActionKind.CONTEST_PRIZE_IN_REACH}:{contest.id}",
            kind=ActionKind.CONTEST_PRIZE_IN_REACH,
            title=f"{gap:,} more points for a prize in {contest.name}",
            why=f"You are ranked {standing.rank} in {contest.name} with {standing.score:,} "
            f"points; place {last_rank} ({prize}) has {target:,}. The contest ends on "
            f"{contest.ends_at:%d %b %Y}.",
            due_at=contest.ends_at, link=f"/contests/{contest.id}", subject_type="Contest",
            subject_id=contest.id,
        ))  # fmt: skip
    return out


async def rule_recommendations(session: AsyncSession, view: Viewpoint) -> list[NextAction]:
    """What the vendor's incentive rules recommended to the partner (organisation-level: a
    rep reads its organisation's), until each expires or its rule is rolled back."""
    found = await active_recommendations(session, view.partner_id, view.now, view.asker)
    return [
        NextAction(
            key=f"{ActionKind.RECOMMENDATION}:{r.id}",
            kind=ActionKind.RECOMMENDATION,
            title=r.title,
            why=r.text,
            due_at=r.expires_at,
            link=r.link,
            code=r.code,
        )  # fmt: skip
        for r in found[:MAX_PER_SOURCE]
    ]


BUILT_IN: tuple[Source, ...] = (
    holds_needing_a_document,
    claims_needing_proof,
    expiring_protections,
    rule_recommendations,
    prizes_in_reach,
    next_tier,
)
