from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types.unset import UNSET

from leaderboards.models import Metric, ParticipantKind, RankingStyle, VisibilityMode
from schema.leaderboards.types import Score
from schema.money import MoneyInput


@strawberry.input(
    description="Points per event of a POINTS contest, each from 0: `revenuePerMajorUnit` at "
    "most 1000, the others at most 1000000 (beyond: TOO_LARGE on `weights`), so one sale "
    "stays far inside the range a Score holds exactly."
)
class ContestWeightsInput:
    revenue_per_major_unit: int = strawberry.field(
        default=0, description="Per 100 minor units of revenue; at most 1000."
    )
    per_unit: int = 0
    per_claim: int = 0
    per_won_deal: int = 0


@strawberry.input
class ContestEligibilityInput:
    tiers: list[str] = strawberry.field(
        default_factory=list,
        description="Partners' program tiers, matched exactly (stored upper-case; a comma "
        "is INVALID_CHARACTERS).",
    )
    regions: list[str] = strawberry.field(
        default_factory=list,
        description="Partners' regions, matched exactly (stored upper-case; `_` and `%` are "
        "plain characters; a comma is INVALID_CHARACTERS).",
    )
    skus: list[str] = strawberry.field(
        default_factory=list, description="Stored upper-case; a comma is INVALID_CHARACTERS."
    )
    partner_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    group_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description="Only partners in one of these partner groups at the sale's (or won "
        "deal's) instant.",
    )


@strawberry.input
class ContestTargetInput:
    participant_id: strawberry.ID
    target: Score = strawberry.field(
        description="In the metric's units, 1 to 2^53 - 1 (beyond: TOO_LARGE on `targets`)."
    )


@strawberry.input
class ContestVisibilityInput:
    mode: VisibilityMode = VisibilityMode.FULL
    top_n: int = 10
    anonymised: bool = False


@strawberry.input
class PrizeInput:
    from_rank: int
    to_rank: int
    prize: str
    amount: MoneyInput | None = strawberry.field(
        default=None,
        description="A money prize, in the contest's currency: finance may credit it to each "
        "winner's earnings once the contest (or period) ends.",
    )


@strawberry.input(description="A new contest (created as a DRAFT unless `publish`).")
class ContestCreateInput:
    name: str
    starts_at: datetime
    ends_at: datetime
    description: str = ""
    time_zone: str = "UTC"
    recurrence: str | None = None
    participant_kind: ParticipantKind = ParticipantKind.PARTNER
    metric: Metric = Metric.REVENUE
    currency: str = "USD"
    weights: ContestWeightsInput | None = None
    eligibility: ContestEligibilityInput | None = None
    targets: list[ContestTargetInput] | None = None
    ranking_style: RankingStyle = RankingStyle.COMPETITION
    visibility: ContestVisibilityInput | None = None
    prizes: list[PrizeInput] | None = None
    publish: bool = False


@strawberry.input(description="Change a contest's rules; omitted fields stay as they are.")
class ContestUpdateInput:
    id: strawberry.ID
    name: str | None = UNSET
    description: str | None = UNSET
    starts_at: datetime | None = UNSET
    ends_at: datetime | None = UNSET
    time_zone: str | None = UNSET
    recurrence: str | None = UNSET
    metric: Metric | None = UNSET
    currency: str | None = UNSET
    weights: ContestWeightsInput | None = UNSET
    eligibility: ContestEligibilityInput | None = UNSET
    targets: list[ContestTargetInput] | None = UNSET
    ranking_style: RankingStyle | None = UNSET
    visibility: ContestVisibilityInput | None = UNSET
    prizes: list[PrizeInput] | None = UNSET


@strawberry.input
class ContestIdInput:
    id: strawberry.ID


@strawberry.input
class ContestPrizeApproveInput:
    id: strawberry.ID = strawberry.field(description="The ContestWinner.")
    note: str = strawberry.field(default="", description="Kept in the audit log.")
