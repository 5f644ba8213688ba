from __future__ import annotations

from typing import Self

import strawberry
from strawberry import Info

from partners import service
from partners.errors import TenancyErrorCode
from partners.models import ApiKey
from partners.policy import TENANCY, TenancyOp
from partners.service import IssuedApiKey
from schema.context import Context
from schema.errors import UserError
from schema.mutations import Payload, Write, run
from schema.partners.inputs import ApiKeyCreateInput, ApiKeyRevokeInput
from schema.partners.types import ApiKeyType
from schema.permissions import allowed


@strawberry.type
class TenancyError(UserError):
    code: TenancyErrorCode


@strawberry.type
class ApiKeyCreatePayload(Payload[IssuedApiKey], errors=TenancyError):
    api_key: ApiKeyType | None = None
    secret: str | None = strawberry.field(
        default=None,
        description="The key itself, shown only in this response; send it as "
        "'Authorization: Bearer <secret>'.",
    )
    user_errors: list[TenancyError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: IssuedApiKey, write: Write) -> Self:
        return cls(api_key=ApiKeyType.from_model(result.key), secret=result.secret)


@strawberry.type
class ApiKeyRevokePayload(Payload[ApiKey], errors=TenancyError):
    api_key: ApiKeyType | None = None
    user_errors: list[TenancyError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: ApiKey, write: Write) -> Self:
        return cls(api_key=ApiKeyType.from_model(result))


@strawberry.type
class PartnersMutation:
    @strawberry.mutation(
        permission_classes=[allowed(TENANCY, TenancyOp.API_KEY_CREATE)],
        description="Create an API key for a server-to-server integration.",
    )
    async def api_key_create(
        self, info: Info[Context, None], input: ApiKeyCreateInput
    ) -> ApiKeyCreatePayload:
        return await run(info, ApiKeyCreatePayload, lambda m: service.create_api_key(
            m.session, m.principal, m.clock, name=input.name, role=input.role
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(TENANCY, TenancyOp.API_KEY_REVOKE)],
        description="Revoke an API key; it stops working at once.",
    )
    async def api_key_revoke(
        self, info: Info[Context, None], input: ApiKeyRevokeInput
    ) -> ApiKeyRevokePayload:
        return await run(info, ApiKeyRevokePayload, lambda m: service.revoke_api_key(
            m.session, m.principal, m.clock, key_id=m.id(input.id, "ApiKey")
        ))  # fmt: skip
