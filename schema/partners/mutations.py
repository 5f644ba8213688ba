from __future__ import annotations

import strawberry
from strawberry import Info

from infra.errors import DomainError
from partners import service
from partners.errors import TenancyErrorCode
from partners.policy import TENANCY, TenancyOp
from partners.roles import Role
from schema.context import Context
from schema.errors import UserError, user_errors
from schema.mutations import mutate
from schema.partners.types import ApiKeyType
from schema.permissions import allowed
from schema.relay import parse_global_id


@strawberry.type
class TenancyError(UserError):
    code: TenancyErrorCode


@strawberry.input
class ApiKeyCreateInput:
    name: str = strawberry.field(description="What the key is for, e.g. 'ERP sync'.")
    role: Role = strawberry.field(
        default=Role.VENDOR_ADMIN, description="The vendor role the key acts with."
    )


@strawberry.type
class ApiKeyCreatePayload:
    api_key: ApiKeyType | None = None
    secret: str | None = strawberry.field(
        default=None,
        description="The key itself, shown only in this response; send it as "
        "'Authorization: Bearer <secret>'.",
    )
    user_errors: list[TenancyError] = strawberry.field(default_factory=list)


@strawberry.input
class ApiKeyRevokeInput:
    id: strawberry.ID


@strawberry.type
class ApiKeyRevokePayload:
    api_key: ApiKeyType | None = None
    user_errors: list[TenancyError] = strawberry.field(default_factory=list)


def _errors(errors: list[DomainError]) -> list[TenancyError]:
    return user_errors(errors, TenancyError, TenancyErrorCode)


@strawberry.type
class PartnersMutation:
    @strawberry.mutation(
        permission_classes=[allowed(TENANCY, TenancyOp.API_KEY_CREATE)],
        description="Create an API key for a server-to-server integration.",
    )
    async def api_key_create(
        self, info: Info[Context, None], input: ApiKeyCreateInput
    ) -> ApiKeyCreatePayload:
        ctx = info.context
        assert ctx.principal is not None
        principal = ctx.principal
        outcome = await mutate(
            ctx,
            lambda s: service.create_api_key(
                s, principal, ctx.services.clock, name=input.name, role=input.role
            ),
        )
        if outcome.result is None:
            return ApiKeyCreatePayload(user_errors=_errors(outcome.errors))
        return ApiKeyCreatePayload(
            api_key=ApiKeyType.from_model(outcome.result.key), secret=outcome.result.secret
        )

    @strawberry.mutation(
        permission_classes=[allowed(TENANCY, TenancyOp.API_KEY_REVOKE)],
        description="Revoke an API key; it stops working at once.",
    )
    async def api_key_revoke(
        self, info: Info[Context, None], input: ApiKeyRevokeInput
    ) -> ApiKeyRevokePayload:
        ctx = info.context
        assert ctx.principal is not None
        principal = ctx.principal
        key_id = parse_global_id(input.id, "ApiKey")
        if key_id is None:
            return ApiKeyRevokePayload(
                user_errors=[
                    TenancyError(
                        field="id", message="No such API key.", code=TenancyErrorCode.NOT_FOUND
                    )
                ]
            )
        outcome = await mutate(
            ctx, lambda s: service.revoke_api_key(s, principal, ctx.services.clock, key_id=key_id)
        )
        if outcome.result is None:
            return ApiKeyRevokePayload(user_errors=_errors(outcome.errors))
        return ApiKeyRevokePayload(api_key=ApiKeyType.from_model(outcome.result))
