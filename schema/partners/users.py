"""Users' administration over GraphQL: userRoleChange, userDeactivate, userReactivate
(issue 12, item 3; the rules are in ``partners.users``)."""

from __future__ import annotations

from typing import Self

import strawberry
from strawberry import Info

from partners import users
from partners.errors import UserAccountErrorCode
from partners.models import User
from partners.policy import USERS, UserOp
from partners.roles import Role
from schema.context import Context
from schema.errors import UserError
from schema.mutations import Payload, Write, run
from schema.partners.types import UserType
from schema.permissions import allowed


@strawberry.type
class UserAccountError(UserError):
    code: UserAccountErrorCode


@strawberry.input(description="Narrow the users list; every filter is optional.")
class UserFilter:
    role: Role | None = None
    active: bool | None = None


@strawberry.input
class UserRoleChangeInput:
    id: strawberry.ID = strawberry.field(description="The user.")
    role: Role = strawberry.field(
        description="Its new role: a partner role for a partner's user, a vendor role for "
        "vendor staff (vendor admins only)."
    )
    reason: str | None = strawberry.field(default=None, description="Kept in the audit log.")


@strawberry.input
class UserDeactivateInput:
    id: strawberry.ID
    reason: str | None = strawberry.field(default=None, description="Kept in the audit log.")


@strawberry.input
class UserReactivateInput:
    id: strawberry.ID
    reason: str | None = strawberry.field(default=None, description="Kept in the audit log.")


@strawberry.type
class UserChangePayload(Payload[User], errors=UserAccountError):
    user: UserType | None = None
    user_errors: list[UserAccountError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: User, write: Write) -> Self:
        return cls(user=UserType.from_model(result))


@strawberry.type
class UsersMutation:
    @strawberry.mutation(
        permission_classes=[allowed(USERS, UserOp.USER_ROLE_CHANGE)],
        description="Change a user's role, effective at once (its open subscriptions close). "
        "Not your own; never the last active admin of a vendor or partner (LAST_ADMIN).",
    )
    async def user_role_change(
        self, info: Info[Context, None], input: UserRoleChangeInput
    ) -> UserChangePayload:
        return await run(info, UserChangePayload, lambda m: users.change_role(
            m.session, m.principal, m.clock, user_id=m.id(input.id, "User"), role=input.role,
            reason=input.reason,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(USERS, UserOp.USER_DEACTIVATE)],
        description="Deactivate a user: its credentials are refused at once "
        "(USER_DEACTIVATED) and its open subscriptions close. Not yourself; never the last "
        "active admin of a vendor or partner (LAST_ADMIN).",
    )
    async def user_deactivate(
        self, info: Info[Context, None], input: UserDeactivateInput
    ) -> UserChangePayload:
        return await run(info, UserChangePayload, lambda m: users.deactivate(
            m.session, m.principal, m.clock, user_id=m.id(input.id, "User"), reason=input.reason
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(USERS, UserOp.USER_REACTIVATE)],
        description="Reactivate a deactivated user.",
    )
    async def user_reactivate(
        self, info: Info[Context, None], input: UserReactivateInput
    ) -> UserChangePayload:
        return await run(info, UserChangePayload, lambda m: users.reactivate(
            m.session, m.principal, m.clock, user_id=m.id(input.id, "User"), reason=input.reason
        ))  # fmt: skip
