"""Contest prizes in the ledger: a prize finance approved becomes one PRIZE entry for the
winner's partner (and its rep, in a rep contest), credited once.

Leaderboards records the approval as an outbox event; earnings does not know leaderboards
(they are independent layers), so the composition root hands the approved prizes here as
``PrizeAward``s, each with the id of the event that approved it: that id is the entry's
source event, which makes crediting idempotent like every other credit (``ledger``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from earnings import booking
from earnings.ledger import record_change
from earnings.models import CreditedSource, EarningEntry, EntryKind, SourceType
from infra.clock import Clock
from infra.db import Database
from infra.money import Money


@dataclass(frozen=True)
class PrizeAward:
    """An approved contest prize, as earnings credits it."""

    event_id: uuid.UUID  # the approval's outbox event: the entry's source
    vendor_id: uuid.UUID
    partner_id: uuid.UUID
    rep_user_id: uuid.UUID | None
    contest_id: uuid.UUID
    contest_name: str
    period: str
    rank: int
    prize: str
    amount_minor: int
    currency: str
    won_at: datetime  # the end of the period it was won in: the entry's effective instant


def explanation(award: PrizeAward) -> str:
    """What the partner reads on the entry."""
    what = f" ({award.prize})" if award.prize else ""
    return (
        f"Prize for finishing {_ordinal(award.rank)} in the contest {award.contest_name!r}"
        f"{'' if award.period == 'all' else f', period {award.period}'}{what}: "
        f"{Money(award.amount_minor, award.currency).format()}, approved by our finance team."
    )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


async def credit_prizes(db: Database, clock: Clock, awards: list[PrizeAward]) -> int:
    """Credit each award once, each in a transaction of its own (prizes are rare). Returns
    the entries written (none for an award credited before)."""
    written = 0
    for award in awards:
        try:
            async with db.transaction() as session:
                now = clock.now()
                source = CreditedSource(
                    vendor_id=award.vendor_id, partner_id=award.partner_id,
                    rep_user_id=award.rep_user_id, source_event_id=award.event_id,
                    source_type=SourceType.PRIZE, subject_id=award.contest_id,
                    currency=award.currency, note=f"Contest prize: {award.contest_name}"[:500],
                    effective_at=award.won_at, credited_at=now,
                )  # fmt: skip
                session.add(source)
                await session.flush()
                booked = await booking.instant(session, {}, award.vendor_id, now)
                entry = EarningEntry(
                    vendor_id=award.vendor_id,
                    partner_id=award.partner_id,
                    rep_user_id=award.rep_user_id,
                    source_id=source.id,
                    source_event_id=award.event_id,
                    kind=EntryKind.PRIZE,
                    amount_minor=award.amount_minor,
                    currency=award.currency,
                    rule=explanation(award)[:500],
                    inputs={
                        "contest_id": str(award.contest_id),
                        "period": award.period,
                        "rank": award.rank,
                        "prize": award.prize,
                        "amount_minor": award.amount_minor,
                    },
                    effective_at=award.won_at,
                    booked_at=booked,
                )
                session.add(entry)
                await session.flush()
                await record_change(
                    session, clock, vendor_id=award.vendor_id, partner_id=award.partner_id,
                    entries=[entry],
                )  # fmt: skip
                written += 1
        except IntegrityError:
            async with db.session() as session:
                done = await session.exec(
                    select(CreditedSource.id).where(
                        CreditedSource.source_event_id == award.event_id
                    )
                )
                if done.first() is None:
                    raise
    return written
