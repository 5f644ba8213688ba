from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry
from strawberry import Info

from pilots import service
from pilots.errors import PilotErrorCode
from pilots.models import Pilot
from pilots.policy import PILOTS, PilotOp
from schema.context import Context
from schema.errors import UserError
from schema.mutations import Payload, Write, run
from schema.permissions import allowed
from schema.pilots.types import PilotType


@strawberry.type
class PilotError(UserError):
    code: PilotErrorCode


@strawberry.type
class PilotPayload(Payload[Pilot], errors=PilotError):
    pilot: PilotType | None = None
    user_errors: list[PilotError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: Pilot, write: Write) -> Self:
        return cls(pilot=PilotType.from_model(result))


@strawberry.input
class PilotCreateInput:
    name: str
    group_id: strawberry.ID = strawberry.field(
        description="The eligible group: its active members now are split into the arms."
    )
    ends_at: datetime = strawberry.field(description="The planned end (in the future).")
    seed: str | None = strawberry.field(
        default=None,
        description="A seed (an integer, as text) to draw the arms from; a random one is "
        "drawn and recorded when null. The same seed and members give the same arms.",
    )
    description: str = ""


@strawberry.input
class PilotInput:
    id: strawberry.ID
    reason: str | None = None


@strawberry.input
class PilotExtendInput:
    id: strawberry.ID
    ends_at: datetime = strawberry.field(description="A later planned end.")
    reason: str | None = None


def _seed(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return -1  # refused by the service as INVALID_SEED


@strawberry.type
class PilotsMutation:
    @strawberry.mutation(
        permission_classes=[allowed(PILOTS, PilotOp.CREATE)],
        description="Create a pilot over a group: its active partners are assigned to "
        "treatment or control at random (stratified by region and program tier) and recorded.",
    )
    async def pilot_create(
        self, info: Info[Context, None], input: PilotCreateInput
    ) -> PilotPayload:
        return await run(info, PilotPayload, lambda m: service.create_pilot(
            m.session, m.principal, m.clock, name=input.name,
            group_id=m.id(input.group_id, "PartnerGroup"), ends_at=input.ends_at,
            seed=_seed(input.seed), description=input.description,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(PILOTS, PilotOp.START)],
        description="Start a pilot: its treatment arm joins its treatment group now.",
    )
    async def pilot_start(self, info: Info[Context, None], input: PilotInput) -> PilotPayload:
        return await run(info, PilotPayload, lambda m: service.start_pilot(
            m.session, m.principal, m.clock, pilot_id=m.id(input.id, "Pilot"),
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(PILOTS, PilotOp.EXTEND)],
        description="Move a pilot's planned end later.",
    )
    async def pilot_extend(
        self, info: Info[Context, None], input: PilotExtendInput
    ) -> PilotPayload:
        return await run(info, PilotPayload, lambda m: service.extend_pilot(
            m.session, m.principal, m.clock, pilot_id=m.id(input.id, "Pilot"),
            ends_at=input.ends_at, reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(PILOTS, PilotOp.END)],
        description="End a pilot now: its treatment group is archived, so whatever targets "
        "it stops applying.",
    )
    async def pilot_end(self, info: Info[Context, None], input: PilotInput) -> PilotPayload:
        return await run(info, PilotPayload, lambda m: service.end_pilot(
            m.session, m.principal, m.clock, pilot_id=m.id(input.id, "Pilot"),
            reason=input.reason,
        ))  # fmt: skip
