"""GraphQL types for contests and standings."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import NewType

import strawberry
from strawberry import Info, relay
from strawberry.types.scalar import ScalarDefinition

from leaderboards import repository
from leaderboards.models import (
    Contest,
    ContestStatus,
    ContestWinner,
    Metric,
    ParticipantKind,
    PrizeStatus,
    RankingStyle,
    VisibilityMode,
    unpack,
)
from leaderboards.reads import Reader, RowView, StandingView, WinnerView, viewer_for
from leaderboards.recurrence import parse_recurrence, periods_between
from leaderboards.service import effective_status
from schema.context import Context
from schema.money import MoneyType
from schema.permissions import VendorStaff
from schema.relay import global_id, to_global_id, visible_nodes

Score = NewType("Score", int)


def _parse_score(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**53:
        raise ValueError("Score must be a JSON integer within 2^53")
    return value


LEADERBOARD_SCALARS: dict[object, ScalarDefinition] = {
    Score: strawberry.scalar(
        name="Score",
        description="A contest score or score difference as a JSON integer (exact to 2^53): "
        "minor units for revenue, else units, counts or points. A board saturates at "
        "2^53 - 1: a total past it ranks and shows as 2^53 - 1 (the exact total is kept).",
        serialize=int,
        parse_value=_parse_score,
    )
}

ContestStatusEnum = strawberry.enum(
    ContestStatus,
    description="DRAFT (only vendors see it), SCHEDULED, LIVE (inside the window), FINISHED "
    "(final standings frozen), CANCELLED.",
)
MetricEnum = strawberry.enum(Metric)
RankingStyleEnum = strawberry.enum(
    RankingStyle,
    description="COMPETITION ranks ties alike and leaves a gap (1-2-2-4); DENSE ranks ties "
    "alike without a gap (1-2-2-3); FIRST_TO_REACH never shares a rank: whoever reached the "
    "score first (to the minute) is higher.",
)
ParticipantKindEnum = strawberry.enum(ParticipantKind)
VisibilityModeEnum = strawberry.enum(VisibilityMode)


@strawberry.type(description="Ranks from..to (inclusive) win this prize.")
class Prize:
    from_rank: int
    to_rank: int
    prize: str
    amount: MoneyType | None = strawberry.field(
        default=None, description="A money prize (credited to earnings once finance approves)."
    )


@strawberry.type(description="What partners see of the board.")
class ContestVisibility:
    mode: VisibilityMode
    top_n: int = strawberry.field(description="With TOP_N: how many rows partners see.")
    anonymised: bool = strawberry.field(description="Other participants' names are hidden.")


@strawberry.type(description="Who may take part and what counts (empty lists: everyone/all).")
class ContestEligibility:
    tiers: list[str]
    regions: list[str]
    skus: list[str]
    _partner_ids: strawberry.Private[list[str]]
    _group_ids: strawberry.Private[list[str]]

    @strawberry.field(
        description="Only these partner organisations (global ids). Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    def partner_ids(self) -> list[strawberry.ID] | None:
        return [
            strawberry.ID(str(to_global_id("Partner", uuid.UUID(p)))) for p in self._partner_ids
        ]

    @strawberry.field(
        description="Only partners in one of these partner groups (global ids). Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    def group_ids(self) -> list[strawberry.ID] | None:
        return [
            strawberry.ID(str(to_global_id("PartnerGroup", uuid.UUID(g)))) for g in self._group_ids
        ]


@strawberry.type(description="One period of a contest (the whole window, or a day/week/month).")
class ContestPeriodType:
    key: str
    starts_at: datetime
    ends_at: datetime


@strawberry.type(name="ContestRevision", description="One audited change of a contest's rules.")
class ContestRevisionType:
    version: int
    changed_at: datetime
    changed_by_id: strawberry.ID | None
    live_at_change: bool
    changes: str = strawberry.field(description='JSON: {"field": [old, new]}.')


@strawberry.type(name="Contest", description="A sales contest with a live leaderboard.")
class ContestType(relay.Node):
    id: relay.NodeID[str]
    name: str
    description: str
    status: ContestStatus
    starts_at: datetime
    ends_at: datetime
    time_zone: str = strawberry.field(description="IANA zone periods are computed in.")
    recurrence: str | None = strawberry.field(
        description="FREQ=DAILY, FREQ=WEEKLY[;WKST=SU] or FREQ=MONTHLY; null: one period."
    )
    participant_kind: ParticipantKind
    metric: Metric
    currency: str
    ranking_style: RankingStyle
    visibility: ContestVisibility
    eligibility: ContestEligibility
    prizes: list[Prize]
    version: int = strawberry.field(description="Bumped by every change of the rules.")
    _model: strawberry.Private[Contest]

    @strawberry.field(description="The periods so far (all of them once finished).")
    def periods(self, info: Info[Context, None]) -> list[ContestPeriodType]:
        c = self._model
        found = periods_between(
            parse_recurrence(c.recurrence), c.time_zone, (c.starts_at, c.ends_at),
            until=max(info.context.services.clock.now(), c.starts_at + timedelta(seconds=1)),
        )  # fmt: skip
        return [
            ContestPeriodType(key=p.key, starts_at=p.starts_at, ends_at=p.ends_at) for p in found
        ]

    @strawberry.field(
        description="Points per sale component (POINTS metric). Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    def weights(self) -> str | None:
        return json.dumps(self._model.weights, sort_keys=True)

    @strawberry.field(
        description="Per-participant targets (JSON, participant id -> target); with targets "
        "the board ranks by share of target. Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    def targets(self) -> str | None:
        return json.dumps(self._model.targets, sort_keys=True)

    @strawberry.field(
        description="The audit trail of rule changes. Vendor roles only.",
        permission_classes=[VendorStaff],
    )
    async def revisions(self, info: Info[Context, None]) -> list[ContestRevisionType] | None:
        rows = await repository.revisions(info.context.session, info.context.caller, self._model.id)
        return [
            ContestRevisionType(
                version=r.version,
                changed_at=r.created_at,
                changed_by_id=strawberry.ID(str(to_global_id("User", r.changed_by_id)))
                if r.changed_by_id
                else None,
                live_at_change=r.live_at_change,
                changes=json.dumps(r.changes, sort_keys=True),
            )  # fmt: skip
            for r in rows
        ]

    @strawberry.field(
        description="Who won (rank, participant, prize), recorded when a period's standings "
        "froze; of one period, or of every period so far. Partners see them as the board "
        "shows them (a TOP_N contest: its top rows and their own; an anonymised contest "
        "hides other participants)."
    )
    async def winners(
        self, info: Info[Context, None], period: str | None = None
    ) -> list[ContestWinnerType]:
        principal = info.context.caller
        context = info.context
        reader = Reader(context.services.leaderboards, lambda: context.session, context.recording)
        views = await reader.winners(self._model, viewer_for(principal, self._model), period)
        return [ContestWinnerType.of(v, self._model.participant_kind) for v in views]

    @classmethod
    def from_model(cls, contest: Contest, now: datetime) -> ContestType:
        return cls(
            id=str(contest.id), name=contest.name, description=contest.description,
            status=effective_status(contest, now), starts_at=contest.starts_at,
            ends_at=contest.ends_at, time_zone=contest.time_zone, recurrence=contest.recurrence,
            participant_kind=contest.participant_kind, metric=contest.metric,
            currency=contest.currency, ranking_style=contest.ranking_style,
            visibility=ContestVisibility(
                mode=contest.visibility, top_n=contest.visible_top_n,
                anonymised=contest.anonymise,
            ),
            eligibility=ContestEligibility(
                tiers=unpack(contest.eligible_tiers), regions=unpack(contest.eligible_regions),
                skus=unpack(contest.eligible_skus),
                _partner_ids=unpack(contest.eligible_partner_ids),
                _group_ids=unpack(contest.eligible_group_ids),
            ),
            prizes=[
                Prize(
                    from_rank=int(p["from_rank"]), to_rank=int(p["to_rank"]),
                    prize=str(p["prize"]),
                    amount=MoneyType.of(int(p["amount_minor"]), contest.currency)
                    if p.get("amount_minor") is not None
                    else None,
                )
                for p in contest.prizes
            ],
            version=contest.version, _model=contest,
        )  # fmt: skip

    resolve_nodes = visible_nodes(
        repository.contests_by_ids,
        lambda cls, row, ctx: cls.from_model(row, ctx.services.clock.now()),
    )


@strawberry.type(description="A participant on a board: a partner organisation or a rep.")
class Participant:
    id: strawberry.ID | None = strawberry.field(
        description="Null when the contest hides other participants' identities."
    )
    name: str
    is_you: bool


@strawberry.type(description="One row of a leaderboard.")
class LeaderboardRow:
    rank: int
    participant: Participant
    score: Score
    gap_to_above: Score | None = strawberry.field(
        description="How far behind the row above (0 when tied); null for the first row."
    )

    @classmethod
    def of(cls, row: RowView, kind: ParticipantKind) -> LeaderboardRow:
        gap = Score(row.gap_to_above) if row.gap_to_above is not None else None
        return cls(
            rank=row.rank,
            participant=participant_of(row, kind),
            score=Score(row.score),
            gap_to_above=gap,
        )


def participant_of(row: RowView, kind: ParticipantKind) -> Participant:
    type_name = "Partner" if kind is ParticipantKind.PARTNER else "User"
    gid = global_id(type_name, row.participant_id) if row.participant_id else None
    return Participant(id=gid, name=row.name, is_you=row.is_you)


PrizeStatusEnum = strawberry.enum(
    PrizeStatus,
    description="NONE: the prize is not money (nothing to credit); PENDING: waits for "
    "finance's approval; APPROVED: credited to the winner's earnings.",
)


@strawberry.type(name="ContestWinner", description="A winner of a finished contest or period.")
class ContestWinnerType:
    id: strawberry.ID
    period: str
    rank: int
    participant: Participant
    score: Score
    prize: str = strawberry.field(description="What the rank won (empty: no prize).")
    prize_amount: MoneyType | None = strawberry.field(description="A money prize.")
    prize_status: PrizeStatus | None = strawberry.field(
        description="Vendor staff and the winner itself only."
    )
    _winner: strawberry.Private[ContestWinner]

    @strawberry.field(description="When finance approved the prize. Vendor roles only.",
                      permission_classes=[VendorStaff])  # fmt: skip
    def approved_at(self) -> datetime | None:
        return self._winner.approved_at

    @classmethod
    def of(cls, view: WinnerView, kind: ParticipantKind) -> ContestWinnerType:
        w = view.winner
        return cls(
            id=global_id("ContestWinner", w.id), period=w.period_key, rank=w.rank,
            participant=participant_of(view.participant, kind), score=Score(w.score),
            prize=w.prize,
            prize_amount=MoneyType.of(w.prize_minor, w.currency)
            if w.prize_minor is not None
            else None,
            prize_status=view.prize_status, _winner=w,
        )  # fmt: skip

    @classmethod
    def for_staff(cls, w: ContestWinner, name: str) -> ContestWinnerType:
        """A winner as vendor staff see it (the prize approval's answer)."""
        participant = RowView(w.participant_id, name, False, w.rank, w.score, None)
        kind = ParticipantKind.REP if w.rep_user_id is not None else ParticipantKind.PARTNER
        return cls.of(WinnerView(w, participant, w.prize_status), kind)


@strawberry.type(description="A leaderboard page.")
class LeaderboardEdge:
    cursor: str
    node: LeaderboardRow


@strawberry.type(description="A page of a leaderboard, best first.")
class LeaderboardConnection:
    edges: list[LeaderboardEdge]
    page_info: relay.PageInfo
    total_count: int = strawberry.field(description="Rows you may see on this board.")
    version: int = strawberry.field(description="The board's version (bumped on every change).")
    period: str
    frozen: bool = strawberry.field(
        description="Final standings, served from the archive. A period is frozen within "
        "seconds of its end, once the sales recorded before the end are credited (at most "
        "30 s); until then its live standings are served."
    )
    status: ContestStatus


@strawberry.type(description="A participant's place on a board.")
class Standing:
    participant: Participant
    rank: int
    score: Score
    gap_to_next: Score | None = strawberry.field(
        description="Points to draw level with the participant just above; null when first."
    )
    percentile: float = strawberry.field(description="Share of the board at or below you (%).")
    tied_with: int = strawberry.field(description="How many others have the same score.")
    nemesis: LeaderboardRow | None = strawberry.field(
        description="The participant just above you (null when you lead or may not see it)."
    )
    tie_rule: str = strawberry.field(description="Which rule placed this standing.")
    total_participants: int
    period: str

    @classmethod
    def of(cls, view: StandingView, kind: ParticipantKind) -> Standing:
        s = view.standing
        nemesis = LeaderboardRow.of(view.nemesis, kind) if view.nemesis else None
        return cls(
            participant=participant_of(view.participant, kind), rank=s.rank, score=Score(s.score),
            gap_to_next=Score(s.gap_to_next) if nemesis and s.gap_to_next is not None else None,
            percentile=s.percentile, tied_with=s.tied_with, nemesis=nemesis,
            tie_rule=view.tie_rule, total_participants=s.total, period=view.period.key,
        )  # fmt: skip


@strawberry.type(description="One source event behind a score.")
class Credit:
    event_id: strawberry.ID
    event_type: str
    occurred_at: datetime
    points: Score
    description: str


@strawberry.type(description="Why a standing is what it is.")
class StandingExplanation:
    standing: Standing
    credits: list[Credit]
    tie_rule: str


@strawberry.type(description="A pushed change of a leaderboard.")
class LeaderboardUpdate:
    contest_id: strawberry.ID
    version: int = strawberry.field(
        description="Per-contest version; a gap means you missed an update (the rows are "
        "always the latest state)."
    )
    status: ContestStatus
    period: str
    final: bool = strawberry.field(description="Final standings; the subscription completes.")
    rows: list[LeaderboardRow]
    me: Standing | None = strawberry.field(description="Your own standing (null for vendor staff).")
