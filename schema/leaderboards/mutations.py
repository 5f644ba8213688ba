from __future__ import annotations

from typing import Any, ClassVar, Self

import strawberry
from strawberry import Info
from strawberry.types.unset import UNSET

from infra.errors import DomainError
from leaderboards import repository, service, winners
from leaderboards.errors import ContestErrorCode
from leaderboards.models import Contest, ContestWinner
from leaderboards.policy import CONTESTS, ContestOp
from schema.context import Context
from schema.errors import UserError
from schema.leaderboards.inputs import (
    ContestCreateInput,
    ContestIdInput,
    ContestPrizeApproveInput,
    ContestUpdateInput,
    PrizeInput,
)
from schema.leaderboards.types import ContestType, ContestWinnerType
from schema.mutations import Payload, Write, run
from schema.permissions import allowed
from schema.relay import parse_global_id

ContestErrorCodeEnum = strawberry.enum(ContestErrorCode)


@strawberry.type
class ContestError(UserError):
    code: ContestErrorCode
    amount_code: ClassVar[ContestErrorCode] = ContestErrorCode.INVALID_PRIZE


@strawberry.type
class ContestPayload(Payload[Contest], errors=ContestError):
    contest: ContestType | None = None
    user_errors: list[ContestError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: Contest, write: Write) -> Self:
        return cls(contest=ContestType.from_model(result, write.clock.now()))


@strawberry.type
class ContestPrizeApprovePayload(Payload[tuple[ContestWinner, str]], errors=ContestError):
    winner: ContestWinnerType | None = None
    user_errors: list[ContestError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: tuple[ContestWinner, str], write: Write) -> Self:
        return cls(winner=ContestWinnerType.for_staff(*result))


def _settings(m: Write, input: ContestCreateInput | ContestUpdateInput) -> dict[str, Any]:
    """Input fields as ContestSettings fields (only those given)."""
    out: dict[str, Any] = {}
    for name in ("name", "description", "starts_at", "ends_at", "time_zone", "recurrence",
                 "participant_kind", "metric", "currency", "ranking_style"):  # fmt: skip
        value = getattr(input, name, UNSET)
        if value is not UNSET and (value is not None or name == "recurrence"):
            out[name] = value
    if (weights := input.weights) not in (UNSET, None):
        out["weights"] = {k: v for k, v in vars(weights).items() if v}
    if (eligibility := input.eligibility) not in (UNSET, None):
        out["eligible_tiers"] = list(eligibility.tiers)
        out["eligible_regions"] = list(eligibility.regions)
        out["eligible_skus"] = list(eligibility.skus)
        out["eligible_partner_ids"] = [str(i) for i in m.ids(eligibility.partner_ids, "Partner")]
        out["eligible_group_ids"] = [str(i) for i in m.ids(eligibility.group_ids, "PartnerGroup")]
    if (targets := input.targets) not in (UNSET, None):
        out["targets"] = {_participant(t.participant_id): int(t.target) for t in targets}
    if (visibility := input.visibility) not in (UNSET, None):
        out["visibility"] = visibility.mode
        out["visible_top_n"] = visibility.top_n
        out["anonymise"] = visibility.anonymised
    if (prizes := input.prizes) not in (UNSET, None):
        out["prizes"] = [_prize(m, p, i) for i, p in enumerate(prizes)]
    return out


def _prize(m: Write, p: PrizeInput, index: int) -> dict[str, Any]:
    out: dict[str, Any] = {"from_rank": p.from_rank, "to_rank": p.to_rank, "prize": p.prize.strip()}
    if p.amount is not None:
        amount = m.money(p.amount, f"prizes.{index}.amount")
        out["amount_minor"], out["currency"] = amount.minor, amount.currency
    return out


def _participant(raw: strawberry.ID) -> str:
    """A target's key: a partner's or a user's id. The contest's rules judge targets (an
    unknown id is kept and never scores), so a malformed one is refused here."""
    found = parse_global_id(raw, "Partner") or parse_global_id(raw, "User")
    if found is None:
        raise DomainError(ContestErrorCode.INVALID_TARGET, "Unknown participant.", "targets")
    return str(found)


@strawberry.type
class LeaderboardsMutation:
    @strawberry.mutation(
        permission_classes=[allowed(CONTESTS, ContestOp.CREATE)],
        description="Create a contest (vendor admins).",
    )
    async def contest_create(
        self, info: Info[Context, None], input: ContestCreateInput
    ) -> ContestPayload:
        async def create(m: Write) -> Contest:
            settings = service.ContestSettings(**_settings(m, input))
            contest = await service.create_contest(
                m.session, m.principal, m.clock, settings=settings
            )
            if not input.publish:
                return contest
            return await service.publish_contest(
                m.session, m.principal, m.clock, contest_id=contest.id
            )

        return await run(info, ContestPayload, create)

    @strawberry.mutation(
        permission_classes=[allowed(CONTESTS, ContestOp.UPDATE)],
        description="Change a contest's rules, also while it is live: the change is "
        "versioned and audited, and the standings are re-ranked from the ledger.",
    )
    async def contest_update(
        self, info: Info[Context, None], input: ContestUpdateInput
    ) -> ContestPayload:
        return await run(info, ContestPayload, lambda m: service.update_contest(
            m.session, m.principal, m.clock, contest_id=m.id(input.id, "Contest"),
            changes=_settings(m, input),
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(CONTESTS, ContestOp.PUBLISH)],
        description="Publish a draft: it scores from its start (events since the start "
        "already in the ledger count).",
    )
    async def contest_publish(
        self, info: Info[Context, None], input: ContestIdInput
    ) -> ContestPayload:
        return await run(info, ContestPayload, lambda m: service.publish_contest(
            m.session, m.principal, m.clock, contest_id=m.id(input.id, "Contest")
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(CONTESTS, ContestOp.CANCEL)], description="Cancel a contest."
    )
    async def contest_cancel(
        self, info: Info[Context, None], input: ContestIdInput
    ) -> ContestPayload:
        return await run(info, ContestPayload, lambda m: service.cancel_contest(
            m.session, m.principal, m.clock, contest_id=m.id(input.id, "Contest")
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(CONTESTS, ContestOp.APPROVE_PRIZE)],
        description="Approve a winner's money prize (finance): it is credited to the "
        "winner's earnings as a PRIZE entry, once. Audited.",
    )
    async def contest_prize_approve(
        self, info: Info[Context, None], input: ContestPrizeApproveInput
    ) -> ContestPrizeApprovePayload:
        async def approve(m: Write) -> tuple[ContestWinner, str]:
            winner = await winners.approve_prize(
                m.session, m.principal, m.clock, winner_id=m.id(input.id, "ContestWinner"),
                note=input.note,
            )  # fmt: skip
            names = await repository.names_of(m.session, winner.vendor_id, [winner.participant_id])
            return winner, names.get(winner.participant_id, "Unknown")

        return await run(info, ContestPrizeApprovePayload, approve)
