from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import replace
from datetime import datetime
from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry import Info

from infra.clock import Clock
from infra.db import DbSession
from infra.errors import DomainError
from infra.pubsub import Listener
from next_actions import handlers, service, timing
from next_actions.actions import Viewpoint
from next_actions.policy import NEXT_ACTIONS, NextActionsOp
from schema.context import Context
from schema.earnings.queries import query_error
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


async def _wait(listener: Listener, clock: Clock, wake: datetime | None) -> None:
    """Until a notice comes or the clock passes ``wake`` (None: a notice only)."""
    while True:
        timeout = None
        if wake is not None:
            left = (wake - clock.now()).total_seconds()
            if left <= 0:
                return
            timeout = min(CLOCK_TICK_SECONDS, left)
        try:
            await asyncio.wait_for(listener.get(), timeout)
            return
        except TimeoutError:
            continue


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
        "hold, sale or earnings change of the partner, from any API process; or time alone: "
        "a deadline or expiry passing, a deal's protection coming within the warning period "
        "or counting down a day).",
    )
    async def next_actions_changed(
        self,
        info: Info[Context, None],
        partner_id: PartnerIdArg = None,
    ) -> AsyncGenerator[NextActionsType, None]:
        services = info.context.services
        async with services.db.read_session() as session:
            view = await _viewpoint(info, session, partner_id)
        async with services.hub.listen(handlers.channel(services.hub, view.partner_id)) as listener:
            last: NextActionsType | None = None
            while True:
                # A short session per notice or time boundary; the clock moves on between.
                view = replace(view, now=services.clock.now())
                async with services.db.read_session() as session:
                    found = await service.next_actions(session, view, services.next_action_sources)
                    # What time alone changes next (a deadline, an expiry, a countdown).
                    wake = await timing.next_change(session, view, found)
                current = NextActionsType(actions=[NextActionType.of(a) for a in found])
                if current != last:
                    yield current
                    last = current
                await _wait(listener, services.clock, wake)
