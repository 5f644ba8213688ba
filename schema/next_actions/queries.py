from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry import Info

from infra.clock import Clock
from infra.db import DbSession
from infra.errors import DomainError
from infra.pubsub import Listener
from infra.redis import RedisUnavailable
from infra.tasks import raise_lost_cancellation
from leaderboards.runtime import Leaderboards
from next_actions import handlers, service, sources, timing
from next_actions.actions import Viewpoint
from next_actions.policy import NEXT_ACTIONS, NextActionsOp
from schema.context import Context
from schema.errors import query_error
from schema.next_actions.types import NextActionsType, NextActionType
from schema.permissions import allowed
from schema.relay import parse_global_id

PartnerIdArg = Annotated[
    strawberry.ID | None,
    strawberry.argument(
        description="Partner users: omit it (their own). Vendor admins and channel managers: "
        "the partner whose actions to read (as its organisation sees them)."
    ),
]


async def _viewpoint(
    info: Info[Context, None], session: DbSession, partner_id: strawberry.ID | None
) -> Viewpoint:
    ctx = info.context
    parsed = None
    if partner_id is not None:
        parsed = parse_global_id(partner_id, "Partner")
        if parsed is None:
            raise GraphQLError("No such partner.", extensions={"code": "NOT_FOUND"})
    try:
        return await service.viewpoint(
            session, ctx.caller, ctx.services.clock, partner_id=parsed,
            signals=ctx.services.claim_signals, leaderboards=ctx.services.leaderboards,
        )  # fmt: skip
    except DomainError as error:
        raise query_error(error) from error


async def _read(info: Info[Context, None], session: DbSession, view: Viewpoint) -> NextActionsType:
    found = await service.next_actions(session, view, info.context.services.next_action_sources)
    return NextActionsType(actions=[NextActionType.of(a) for a in found])


# How often a subscription waiting for a time boundary looks at the clock: the clock may be
# moved (tests, simulations), so the wait is never one long sleep (leaderboards' feeds do
# the same). Nothing is read until the boundary has passed or a notice came.
CLOCK_TICK_SECONDS = 1.0


# A followed contest's board moves with every sale of every participant, and only the
# prize-in-reach action reads it: its notices re-read the list at most this often (seconds).
# The partner's own notices and time boundaries are never held back.
BOARD_GAP_SECONDS = 1.0


class _Boards:
    """One listener on the live boards of the contests the list reads standings from
    (``sources.watched_contests``), following them as they start, end or change."""

    def __init__(self, leaderboards: Leaderboards) -> None:
        self.listener = Listener("boards", maxsize=1)
        self._leaderboards = leaderboards
        self._open: dict[uuid.UUID, contextlib.AsyncExitStack] = {}

    async def follow(self, contests: list[uuid.UUID]) -> bool:
        """Listen to exactly these boards; True when one was added (a notice published
        before it was heard may be missing: read again)."""
        for contest_id in set(self._open) - set(contests):
            await self._open.pop(contest_id).aclose()
        added = False
        for contest_id in contests:
            if contest_id in self._open:
                continue
            stack = contextlib.AsyncExitStack()
            lb = self._leaderboards
            try:
                await stack.enter_async_context(
                    lb.hub.listen(lb.channel(contest_id), into=self.listener)
                )
            except RedisUnavailable:
                # Not followed for now: the partner's own listener hears the reconnection
                # (None), the list is read again, and the board followed then.
                continue
            self._open[contest_id] = stack
            added = True
        return added

    async def aclose(self) -> None:
        await self.follow([])


async def _wait(
    own: Listener, boards: Listener, clock: Clock, wake: datetime | None, read_at: float
) -> None:
    """Until a notice of the partner's own comes, the clock passes ``wake`` (None: no time
    boundary), or a followed board moved and ``BOARD_GAP_SECONDS`` have passed since the
    list was read at ``read_at`` (the loop's time)."""
    loop = asyncio.get_running_loop()
    board_moved = False
    while True:
        timeouts = []
        if wake is not None:
            left = (wake - clock.now()).total_seconds()
            if left <= 0:
                return
            timeouts.append(min(CLOCK_TICK_SECONDS, left))
        if board_moved:
            left = read_at + BOARD_GAP_SECONDS - loop.time()
            if left <= 0:
                return
            timeouts.append(left)
        raise_lost_cancellation()
        getters = {asyncio.ensure_future(own.get()): True}
        if not board_moved:
            getters[asyncio.ensure_future(boards.get())] = False
        try:
            done, _ = await asyncio.wait(
                getters, timeout=min(timeouts, default=None), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for getter in getters:
                getter.cancel()  # a cancelled Queue.get leaves its item in the queue
        if any(getters[getter] for getter in done):
            return
        board_moved = board_moved or bool(done)


@strawberry.type
class NextActionsQuery:
    @strawberry.field(
        permission_classes=[allowed(NEXT_ACTIONS, NextActionsOp.READ)],
        description="What is worth doing now, ranked, each with why.",
    )
    async def next_actions(
        self,
        info: Info[Context, None],
        partner_id: PartnerIdArg = None,
    ) -> NextActionsType | None:
        session = info.context.session
        return await _read(info, session, await _viewpoint(info, session, partner_id))


@strawberry.type
class NextActionsSubscription:
    @strawberry.subscription(
        permission_classes=[allowed(NEXT_ACTIONS, NextActionsOp.SUBSCRIBE)],
        description="`nextActions`, first now and again whenever they change (a claim, deal, "
        "hold, sale, earnings change or rule recommendation of the partner, from any API "
        "process; another participant's score in a contest whose prize is in reach; a "
        "program's new version; or time alone: a deadline or expiry passing, a sale leaving "
        "the tier's window, a deal's protection coming within the warning period or "
        "counting down a day, a program version dated later taking effect). A partner you "
        "may not read (or no longer may: a channel manager unassigned) errors NOT_FOUND.",
    )
    async def next_actions_changed(
        self,
        info: Info[Context, None],
        partner_id: PartnerIdArg = None,
    ) -> AsyncGenerator[NextActionsType, None]:
        services = info.context.services
        async with services.db.read_session() as session:
            view = await _viewpoint(info, session, partner_id)
        follow_boards = sources.prizes_in_reach in services.next_action_sources
        boards = _Boards(services.leaderboards)
        loop = asyncio.get_running_loop()
        channel = handlers.channel(services.hub, view.partner_id)
        vendor_wide = handlers.vendor_channel(services.hub, view.vendor_id)
        async with (
            services.hub.listen(channel) as own,
            services.hub.listen(vendor_wide, into=own),  # one queue: either notice re-reads
        ):
            try:
                last: NextActionsType | None = None
                while True:
                    # A short session per notice or time boundary; the clock moves on between.
                    read_at = loop.time()
                    async with services.db.read_session() as session:
                        # Whether the caller may still read this partner's list is decided
                        # at every push, as a read decides it (a channel manager unassigned
                        # meanwhile: NOT_FOUND, and the subscription ends).
                        view = await _viewpoint(info, session, partner_id)
                        found = await service.next_actions(
                            session, view, services.next_action_sources
                        )
                        # What time alone changes next (a deadline, an expiry, a countdown).
                        wake = await timing.next_change(session, view, found)
                        contests = (
                            await sources.watched_contests(session, view) if follow_boards else []
                        )
                    current = NextActionsType(actions=[NextActionType.of(a) for a in found])
                    if current != last:
                        yield current
                        last = current
                    if await boards.follow(contests):
                        continue  # a board newly heard may have moved since the read
                    await _wait(own, boards.listener, services.clock, wake, read_at)
            finally:
                await boards.aclose()
