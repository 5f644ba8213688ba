"""The events leaderboards record in the outbox (``infra.events.Event``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from infra.events import Event, uuid_or_none

CONTEST_CHANGED = "ContestChanged"


@dataclass(frozen=True)
class ContestChanged(Event):
    """A contest's settings or status changed: rebuild its boards (while it runs) and
    announce its version to every process's subscribers."""

    type: ClassVar[str] = CONTEST_CHANGED
    contest_id: uuid.UUID
    version: int

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(contest_id=uuid.UUID(payload["contest_id"]), version=int(payload["version"]))


CONTEST_FINISHED = "ContestFinished"
CONTEST_PRIZE_APPROVED = "ContestPrizeApproved"


@dataclass(frozen=True)
class FinishedWinner:
    """One winner of a finished contest or period. ``participant_id`` is the partner (a
    partner contest) or the rep's user (a rep contest); ``partner_id`` is always the partner
    organisation. ``prize_minor`` is None when the prize is not money (a trip, a trophy)."""

    winner_id: uuid.UUID
    rank: int
    participant_id: uuid.UUID
    partner_id: uuid.UUID
    score: int
    prize: str
    prize_minor: int | None
    currency: str

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        minor = payload.get("prize_minor")
        return cls(
            winner_id=uuid.UUID(payload["winner_id"]), rank=int(payload["rank"]),
            participant_id=uuid.UUID(payload["participant_id"]),
            partner_id=uuid.UUID(payload["partner_id"]), score=int(payload["score"]),
            prize=str(payload["prize"]), prize_minor=None if minor is None else int(minor),
            currency=str(payload["currency"]),
        )  # fmt: skip


@dataclass(frozen=True)
class ContestFinished(Event):
    """A contest's period ended and its standings froze (a one-period contest: the contest
    itself ended). Recorded once per period, in the transaction that froze the standings and
    recorded the winners (``leaderboards.winners``). ``final`` is True for the contest's last
    period. Winners carry every prize-winning rank (rank 1 when the contest has no prizes)
    with a positive score; an anonymised contest is anonymised for partners by whoever
    shows these ids to them."""

    type: ClassVar[str] = CONTEST_FINISHED
    contest_id: uuid.UUID
    vendor_id: uuid.UUID
    contest_name: str
    period: str
    period_starts_at: datetime
    period_ends_at: datetime
    final: bool
    anonymised: bool
    winners: tuple[FinishedWinner, ...]

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            contest_id=uuid.UUID(payload["contest_id"]),
            vendor_id=uuid.UUID(payload["vendor_id"]),
            contest_name=str(payload["contest_name"]), period=str(payload["period"]),
            period_starts_at=datetime.fromisoformat(payload["period_starts_at"]),
            period_ends_at=datetime.fromisoformat(payload["period_ends_at"]),
            final=bool(payload["final"]), anonymised=bool(payload["anonymised"]),
            winners=tuple(FinishedWinner.parse(w) for w in payload["winners"]),
        )  # fmt: skip


@dataclass(frozen=True)
class ContestPrizeApproved(Event):
    """Finance approved a winner's money prize: earnings credits it to the partner (and the
    rep, in a rep contest) as a PRIZE ledger entry, once (the event id is its source)."""

    type: ClassVar[str] = CONTEST_PRIZE_APPROVED
    winner_id: uuid.UUID
    contest_id: uuid.UUID
    vendor_id: uuid.UUID
    contest_name: str
    period: str
    period_ends_at: datetime
    rank: int
    partner_id: uuid.UUID
    rep_user_id: uuid.UUID | None
    prize: str
    amount_minor: int
    currency: str
    approved_by_id: uuid.UUID | None

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> Self:
        return cls(
            winner_id=uuid.UUID(payload["winner_id"]),
            contest_id=uuid.UUID(payload["contest_id"]),
            vendor_id=uuid.UUID(payload["vendor_id"]),
            contest_name=str(payload["contest_name"]), period=str(payload["period"]),
            period_ends_at=datetime.fromisoformat(payload["period_ends_at"]),
            rank=int(payload["rank"]), partner_id=uuid.UUID(payload["partner_id"]),
            rep_user_id=uuid_or_none(payload.get("rep_user_id")), prize=str(payload["prize"]),
            amount_minor=int(payload["amount_minor"]), currency=str(payload["currency"]),
            approved_by_id=uuid_or_none(payload.get("approved_by_id")),
        )  # fmt: skip
