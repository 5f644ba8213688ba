from __future__ import annotations

from collections.abc import Coroutine
from datetime import date
from typing import Annotated, Any

import strawberry
from strawberry import Info

from infra.errors import DomainError
from schema.context import Context
from schema.errors import query_error
from schema.permissions import allowed
from schema.relay import row_id
from schema.signals.types import SignalDayType, SignalDefinitionType
from signals import reads
from signals.policy import SIGNALS, SignalsOp


async def _signal_days(
    read: Coroutine[Any, Any, list[reads.SignalDay] | None],
) -> list[SignalDayType] | None:
    """A read's days as GraphQL types; a bad argument as a coded error naming it."""
    try:
        days = await read
    except DomainError as error:
        raise query_error(error) from error
    return None if days is None else [SignalDayType.of(d) for d in days]


@strawberry.type
class SignalsQuery:
    @strawberry.field(
        permission_classes=[allowed(SIGNALS, SignalsOp.READ)],
        description="A partner's daily signals from 'from' to 'to' (UTC days, inclusive, at "
        "most 366), oldest first; days before its first snapshot are left out. A partner "
        "admin reads its own partner (the default) and the partner-visible signals; vendor "
        "staff the partners they may see, with the vendor-only signals too. A partner rep "
        "never reads its organisation's figures: it gets its own (the 'perRep' signals over "
        "its own sales, claims and deals, as repSignals), from its first day. Null for a "
        "partner you may not see. Bad ranges: INVALID_RANGE, RANGE_TOO_LONG.",
    )
    async def signals(
        self,
        info: Info[Context, None],
        from_: Annotated[date, strawberry.argument(name="from")],
        to: date,
        partner_id: strawberry.ID | None = None,
    ) -> list[SignalDayType] | None:
        ctx = info.context
        return await _signal_days(
            reads.partner_signals(
                ctx.session,
                ctx.caller,
                partner_id=None if partner_id is None else row_id(partner_id, "Partner"),
                first=from_,
                last=to,
            )
        )

    @strawberry.field(
        permission_classes=[allowed(SIGNALS, SignalsOp.READ_REPS)],
        description="One of a partner's reps' daily signals from 'from' to 'to' (UTC days, "
        "inclusive, at most 366), oldest first: the signals whose definition says 'perRep', "
        "over the sales, claims and deals that name the rep (deals: the user who registered "
        "them); days before the rep's first are left out. A partner rep reads its own (the "
        "default), a partner admin its partner's reps, vendor staff the reps of the partners "
        "they may see. Null for a partner or rep you may not see, and for a rep that is not "
        "one of the partner's users. Bad ranges: INVALID_RANGE, RANGE_TOO_LONG; no rep "
        "named: REP_REQUIRED.",
    )
    async def rep_signals(
        self,
        info: Info[Context, None],
        from_: Annotated[date, strawberry.argument(name="from")],
        to: date,
        partner_id: strawberry.ID | None = None,
        rep_user_id: strawberry.ID | None = None,
    ) -> list[SignalDayType] | None:
        ctx = info.context
        return await _signal_days(
            reads.rep_signals(
                ctx.session,
                ctx.caller,
                partner_id=None if partner_id is None else row_id(partner_id, "Partner"),
                rep_user_id=None if rep_user_id is None else row_id(rep_user_id, "User"),
                first=from_,
                last=to,
            )
        )

    @strawberry.field(
        permission_classes=[allowed(SIGNALS, SignalsOp.READ_DEFINITIONS)],
        description="Every signal you may read, described in plain words (a partner admin: "
        "the partner-visible ones; a partner rep: the 'perRep' ones, which it reads over its "
        "own sales, claims and deals).",
    )
    def signal_definitions(self, info: Info[Context, None]) -> list[SignalDefinitionType] | None:
        return [SignalDefinitionType.of(d) for d in reads.definitions_for(info.context.caller)]
