"""Display keys and what an office screen reads with one (the TV page: api/tv)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Self

import strawberry
from strawberry import Info, relay

from leaderboards import display_keys
from leaderboards.display_keys import IssuedDisplayKey
from leaderboards.models import DisplayKey
from leaderboards.policy import CONTESTS, ContestOp
from schema.context import Context
from schema.leaderboards.mutations import ContestError
from schema.leaderboards.types import ContestType
from schema.mutations import Payload, Write, run
from schema.permissions import ScreenOnly, allowed
from schema.relay import Connection, global_id, paginate, visible_nodes


@strawberry.type(
    name="DisplayKey",
    description="A read-only credential for an office screen (secret not shown): it reads "
    "its contests' leaderboards as a partner viewer does, and nothing else.",
)
class DisplayKeyType(relay.Node):
    id: relay.NodeID[str]
    label: str
    prefix: str = strawberry.field(description="Identifies the key; not a secret.")
    contest_ids: list[strawberry.ID] = strawberry.field(description="In rotation order.")
    rotate_seconds: int = strawberry.field(description="How long the screen shows each one.")
    created_at: datetime
    expires_at: datetime | None = strawberry.field(description="Null: until revoked.")
    revoked_at: datetime | None

    @classmethod
    def from_model(cls, key: DisplayKey) -> DisplayKeyType:
        return cls(
            id=str(key.id), label=key.label, prefix=key.prefix,
            contest_ids=[global_id("Contest", uuid.UUID(c)) for c in key.contest_ids],
            rotate_seconds=key.rotate_seconds, created_at=key.created_at,
            expires_at=key.expires_at, revoked_at=key.revoked_at,
        )  # fmt: skip

    resolve_nodes = visible_nodes(display_keys.readable_display_keys_by_ids)


@strawberry.type(description="What a display key's screen shows.")
class Screen:
    label: str
    rotate_seconds: int
    contests: list[ContestType] = strawberry.field(
        description="Its published contests, in rotation order."
    )


@strawberry.input
class DisplayKeyCreateInput:
    label: str = strawberry.field(description="Where the screen is, e.g. 'Sales floor TV'.")
    contest_ids: list[strawberry.ID] = strawberry.field(
        description="One contest, or up to 20 shown in turn."
    )
    rotate_seconds: int = strawberry.field(default=30, description="10 to 600.")
    expires_at: datetime | None = strawberry.field(default=None, description="Null: until revoked.")


@strawberry.input
class DisplayKeyRevokeInput:
    id: strawberry.ID


@strawberry.type
class DisplayKeyCreatePayload(Payload[IssuedDisplayKey], errors=ContestError):
    display_key: DisplayKeyType | None = None
    secret: str | None = strawberry.field(
        default=None,
        description="The key itself, shown only in this response. Open "
        "/tv#key=<secret> on the screen.",
    )
    user_errors: list[ContestError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: IssuedDisplayKey, write: Write) -> Self:
        return cls(display_key=DisplayKeyType.from_model(result.key), secret=result.secret)


@strawberry.type
class DisplayKeyRevokePayload(Payload[DisplayKey], errors=ContestError):
    display_key: DisplayKeyType | None = None
    user_errors: list[ContestError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: DisplayKey, write: Write) -> Self:
        return cls(display_key=DisplayKeyType.from_model(result))


@strawberry.type
class ScreensQuery:
    @strawberry.field(
        permission_classes=[allowed(CONTESTS, ContestOp.DISPLAY_KEYS_READ)],
        description="The vendor's display keys, newest first (vendor admins).",
    )
    async def display_keys(
        self, info: Info[Context, None], first: int | None = None, after: str | None = None
    ) -> Connection[DisplayKeyType] | None:
        return await paginate(
            info.context, display_keys.readable_display_keys(info.context.caller),
            first=first, after=after, to_node=DisplayKeyType.from_model, descending=True,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[ScreenOnly],
        description="For a display key: its label and the contests it shows. FORBIDDEN "
        "for anyone else.",
    )
    async def screen(self, info: Info[Context, None]) -> Screen | None:
        found = await display_keys.screen_of(info.context.session, info.context.caller)
        if found is None:
            return None
        key, contests = found
        now = info.context.services.clock.now()
        return Screen(
            label=key.label, rotate_seconds=key.rotate_seconds,
            contests=[ContestType.from_model(c, now) for c in contests],
        )  # fmt: skip


@strawberry.type
class ScreensMutation:
    @strawberry.mutation(
        permission_classes=[allowed(CONTESTS, ContestOp.DISPLAY_KEY_CREATE)],
        description="Create a display key for an office screen (vendor admins); the secret "
        "is in this response only.",
    )
    async def display_key_create(
        self, info: Info[Context, None], input: DisplayKeyCreateInput
    ) -> DisplayKeyCreatePayload:
        return await run(info, DisplayKeyCreatePayload, lambda m: display_keys.create_display_key(
            m.session, m.principal, m.clock, label=input.label,
            contest_ids=m.ids(input.contest_ids, "Contest"), expires_at=input.expires_at,
            rotate_seconds=input.rotate_seconds,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(CONTESTS, ContestOp.DISPLAY_KEY_REVOKE)],
        description="Revoke a display key: its screens are refused at once and their "
        "live connections closed.",
    )
    async def display_key_revoke(
        self, info: Info[Context, None], input: DisplayKeyRevokeInput
    ) -> DisplayKeyRevokePayload:
        return await run(info, DisplayKeyRevokePayload, lambda m: display_keys.revoke_display_key(
            m.session, m.principal, m.clock, key_id=m.id(input.id, "DisplayKey"),
        ))  # fmt: skip
