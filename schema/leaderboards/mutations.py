from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry import Info
from strawberry.types.unset import UNSET

from infra.errors import DomainError
from leaderboards import service
from leaderboards.errors import ContestErrorCode
from leaderboards.models import Contest, Metric, ParticipantKind, RankingStyle, VisibilityMode
from leaderboards.policy import CONTESTS, ContestOp
from schema.context import Context
from schema.errors import UserError, user_errors
from schema.leaderboards.types import ContestType, Score
from schema.mutations import mutate
from schema.permissions import allowed
from schema.relay import parse_global_id

ContestErrorCodeEnum = strawberry.enum(ContestErrorCode)


@strawberry.type
class ContestError(UserError):
    code: ContestErrorCode


@strawberry.input
class ContestWeightsInput:
    revenue_per_major_unit: int = strawberry.field(default=0, description="Per 100 minor units.")
    per_unit: int = 0
    per_claim: int = 0
    per_won_deal: int = 0


@strawberry.input
class ContestEligibilityInput:
    tiers: list[str] = strawberry.field(default_factory=list)
    regions: list[str] = strawberry.field(default_factory=list)
    skus: list[str] = strawberry.field(default_factory=list)
    partner_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.input
class ContestTargetInput:
    participant_id: strawberry.ID
    target: Score


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


@strawberry.type
class ContestPayload:
    contest: ContestType | None = None
    user_errors: list[ContestError] = strawberry.field(default_factory=list)


def _settings(input: Any) -> dict[str, Any]:
    """Input fields as ContestSettings fields (only those given)."""
    out: dict[str, Any] = {}
    for name in ("name", "description", "starts_at", "ends_at", "time_zone", "recurrence",
                 "participant_kind", "metric", "currency", "ranking_style"):  # fmt: skip
        value = getattr(input, name, UNSET)
        if value is not UNSET and (value is not None or name == "recurrence"):
            out[name] = value
    weights = getattr(input, "weights", UNSET)
    if weights not in (UNSET, None):
        out["weights"] = {k: v for k, v in vars(weights).items() if v}
    eligibility = getattr(input, "eligibility", UNSET)
    if eligibility not in (UNSET, None):
        out["eligible_tiers"] = list(eligibility.tiers)
        out["eligible_regions"] = list(eligibility.regions)
        out["eligible_skus"] = list(eligibility.skus)
        ids = [parse_global_id(p, "Partner") for p in eligibility.partner_ids]
        if any(i is None for i in ids):
            raise DomainError(
                ContestErrorCode.NOT_FOUND, "One of the partners does not exist.",
                "eligibility.partner_ids",
            )  # fmt: skip
        out["eligible_partner_ids"] = [str(i) for i in ids]
    targets = getattr(input, "targets", UNSET)
    if targets not in (UNSET, None):
        parsed: dict[str, int] = {}
        for t in targets:
            pid = parse_global_id(t.participant_id, "Partner") or parse_global_id(
                t.participant_id, "User"
            )
            if pid is None:
                raise DomainError(
                    ContestErrorCode.INVALID_TARGET, "Unknown participant.", "targets"
                )
            parsed[str(pid)] = int(t.target)
        out["targets"] = parsed
    visibility = getattr(input, "visibility", UNSET)
    if visibility not in (UNSET, None):
        out["visibility"] = visibility.mode
        out["visible_top_n"] = visibility.top_n
        out["anonymise"] = visibility.anonymised
    prizes = getattr(input, "prizes", UNSET)
    if prizes not in (UNSET, None):
        out["prizes"] = [
            {"from_rank": p.from_rank, "to_rank": p.to_rank, "prize": p.prize.strip()}
            for p in prizes
        ]
    return out


def _payload(info: Info[Context, None], outcome: Any) -> ContestPayload:
    if outcome.result is None:
        return ContestPayload(
            user_errors=user_errors(outcome.errors, ContestError, ContestErrorCode)
        )
    contest: Contest = outcome.result
    return ContestPayload(
        contest=ContestType.from_model(contest, info.context.services.clock.now())
    )


def _errors(error: DomainError) -> ContestPayload:
    return ContestPayload(user_errors=user_errors([error], ContestError, ContestErrorCode))


@strawberry.type
class LeaderboardsMutation:
    @strawberry.mutation(
        permission_classes=[allowed(CONTESTS, ContestOp.CREATE)],
        description="Create a contest (vendor admins).",
    )
    async def contest_create(
        self, info: Info[Context, None], input: ContestCreateInput
    ) -> ContestPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        try:
            values = _settings(input)
        except DomainError as error:
            return _errors(error)
        settings = service.ContestSettings(**values)

        async def action(session: Any) -> Contest:
            contest = await service.create_contest(
                session, principal, ctx.services.clock, settings=settings
            )
            if input.publish:
                contest = await service.publish_contest(
                    session, principal, ctx.services.clock, contest_id=contest.id
                )
            return contest

        return _payload(info, await mutate(ctx, action))

    @strawberry.mutation(
        permission_classes=[allowed(CONTESTS, ContestOp.UPDATE)],
        description="Change a contest's rules, also while it is live: the change is "
        "versioned and audited, and the standings are re-ranked from the ledger.",
    )
    async def contest_update(
        self, info: Info[Context, None], input: ContestUpdateInput
    ) -> ContestPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        contest_id = parse_global_id(input.id, "Contest")
        if contest_id is None:
            return _errors(DomainError(ContestErrorCode.NOT_FOUND, "No such contest.", "id"))
        try:
            changes = _settings(input)
        except DomainError as error:
            return _errors(error)
        outcome = await mutate(
            ctx,
            lambda s: service.update_contest(
                s, principal, ctx.services.clock, contest_id=contest_id, changes=changes
            ),
        )
        return _payload(info, outcome)

    @strawberry.mutation(
        permission_classes=[allowed(CONTESTS, ContestOp.PUBLISH)],
        description="Publish a draft: it scores from its start (events since the start "
        "already in the ledger count).",
    )
    async def contest_publish(
        self, info: Info[Context, None], input: ContestIdInput
    ) -> ContestPayload:
        return await _by_id(info, input, service.publish_contest)

    @strawberry.mutation(
        permission_classes=[allowed(CONTESTS, ContestOp.CANCEL)], description="Cancel a contest."
    )
    async def contest_cancel(
        self, info: Info[Context, None], input: ContestIdInput
    ) -> ContestPayload:
        return await _by_id(info, input, service.cancel_contest)


async def _by_id(info: Info[Context, None], input: ContestIdInput, action: Any) -> ContestPayload:
    ctx = info.context
    principal = ctx.principal
    assert principal is not None
    contest_id = parse_global_id(input.id, "Contest")
    if contest_id is None:
        return _errors(DomainError(ContestErrorCode.NOT_FOUND, "No such contest.", "id"))
    outcome = await mutate(
        ctx, lambda s: action(s, principal, ctx.services.clock, contest_id=contest_id)
    )
    return _payload(info, outcome)
