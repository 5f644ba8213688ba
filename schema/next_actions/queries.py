from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry import Info

from infra.db import DbSession
from infra.errors import DomainError
from next_actions import handlers, service
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
        "hold, sale or earnings change of the partner, from any API process).",
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
                # A short session per notice; the clock moves on between reads.
                view = replace(view, now=services.clock.now())
                async with services.db.read_session() as session:
                    current = await _read(info, session, view)
                if current != last:
                    yield current
                    last = current
                await listener.get()
