from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry import Info

from infra.errors import DomainError
from leaderboards.fanout import Snapshot, Subscriber
from leaderboards.models import Contest, ContestStatus, ParticipantKind
from leaderboards.reads import Reader, StandingView, viewer_for
from partners.roles import Principal
from schema.context import Context, Services
from schema.leaderboards.types import LeaderboardRow, LeaderboardUpdate, Standing
from schema.permissions import ScreenOrAuthenticated
from schema.relay import check_page_size, parse_global_id, to_global_id


def cancelled_error() -> GraphQLError:
    return GraphQLError("The contest was cancelled.", extensions={"code": "CONTEST_CANCELLED"})


def not_found_error() -> GraphQLError:
    """A contest the caller may not read (or no longer may), answered as a missing one."""
    return GraphQLError("No such contest.", extensions={"code": "NOT_FOUND"})


async def contest_for_subscription(
    services: Services, principal: Principal, contest_id: str
) -> Contest:
    """A short session of its own: a subscription never holds one open."""
    async with services.db.read_session() as session:
        try:
            contest = await Reader(services.leaderboards, session).contest(
                principal, parse_global_id(contest_id, "Contest")
            )
        except DomainError as exc:
            raise not_found_error() from exc
    from leaderboards.service import effective_status  # noqa: PLC0415

    if effective_status(contest, services.clock.now()) is ContestStatus.CANCELLED:
        raise cancelled_error()
    return contest


def update_of(snapshot: Snapshot, me: Standing | None) -> LeaderboardUpdate:
    board = snapshot.board
    kind = snapshot.contest.participant_kind
    return LeaderboardUpdate(
        contest_id=strawberry.ID(str(to_global_id("Contest", snapshot.contest.id))),
        version=snapshot.version, status=snapshot.status,
        period=board.period.key if board else "", final=snapshot.final,
        rows=[LeaderboardRow.of(r, kind) for r in board.rows] if board else [], me=me,
    )  # fmt: skip


class ObjectRenderer:
    """For strawberry's own execution path: typed objects, executed per subscriber."""

    def __init__(self, kind: ParticipantKind) -> None:
        self.kind = kind

    def shared(self, snapshot: Snapshot) -> Any:
        if snapshot.status is ContestStatus.CANCELLED:
            return cancelled_error()
        return snapshot

    def message(self, sub: Subscriber, shared: Any, me: StandingView | None) -> Any:
        if isinstance(shared, GraphQLError):
            return shared
        return update_of(shared, Standing.of(me, self.kind) if me else None)

    def not_found(self) -> GraphQLError:
        return not_found_error()


@strawberry.type
class LeaderboardsSubscription:
    @strawberry.subscription(
        permission_classes=[ScreenOrAuthenticated],
        description="The top `first` rows and your own standing, pushed when they change "
        "(at most about four times a second per contest; always ending on the latest state). "
        "The first message is a fresh snapshot. Each push carries the contest's version. "
        "When a recurring contest's period ends, the next period's board is pushed; when "
        "the contest ends (also while you watch), its final standings are sent (`final: "
        "true`, at a higher version than the last live push) and the subscription "
        "completes; a cancelled one errors "
        "(CONTEST_CANCELLED); an unknown or invisible one errors NOT_FOUND, as does one "
        "that becomes invisible while you watch (its eligibility, or your partner's groups, "
        "changed); a change of its visibility (top N, anonymised) applies to the next push. "
        "A display key (an office screen) subscribes to its own contests, as a partner sees "
        "them.",
    )
    async def leaderboard_changed(
        self, info: Info[Context, None], contest_id: strawberry.ID, first: int = 10
    ) -> AsyncGenerator[LeaderboardUpdate, None]:
        services = info.context.services
        principal = info.context.caller
        limit = check_page_size(first, services.max_page_size)
        contest = await contest_for_subscription(services, principal, contest_id)
        viewer = viewer_for(principal, contest)
        fanout = services.fanout
        renderer = ObjectRenderer(contest.participant_kind)
        async with fanout.subscribe(contest, viewer, first=limit, renderer=renderer) as sub:
            while True:
                message = await sub.next()
                if isinstance(message, GraphQLError):
                    raise message
                yield message
                if sub.done:
                    return
