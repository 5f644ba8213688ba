"""Invitations in GraphQL: create, resend, revoke, list (admins), and accept (the invitee,
signed in at the identity provider but not yet a user)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Self

import strawberry
from strawberry import Info, relay

from infra.db import begin_write
from infra.errors import DomainError
from partners import invitations, repository
from partners.errors import InvitationErrorCode
from partners.invitations import InvitationState, IssuedInvitation
from partners.models import Invitation, User
from partners.policy import INVITATIONS, InvitationOp
from partners.roles import Role
from schema.context import Context
from schema.errors import UserError
from schema.mutations import Payload, Write, run
from schema.partners.types import PartnerType, UserType
from schema.permissions import allowed, unauthenticated
from schema.relay import Connection, paginate, visible_nodes

InvitationStateEnum = strawberry.enum(
    InvitationState,
    name="InvitationStatus",
    description="PENDING until accepted or revoked; EXPIRED once a pending invitation's "
    "expiry has passed (resend it for a new token and expiry).",
)


@strawberry.type(name="Invitation", description="An invitation to join with a role.")
class InvitationType(relay.Node):
    id: relay.NodeID[str]
    email: str = strawberry.field(description="Normalised: trimmed, lower-case.")
    role: Role
    status: InvitationState
    invited_by: str = strawberry.field(
        description="Who invited: 'user:<id>', 'api_key:<id>' or 'operator:<login>'."
    )
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None
    _partner_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The partner the invitee joins; null for vendor staff.")
    async def partner(self, info: Info[Context, None]) -> PartnerType | None:
        if self._partner_id is None or info.context.principal is None:
            return None
        partner = await repository.get_readable_partner(
            info.context.session, info.context.principal, self._partner_id
        )
        return PartnerType.from_model(partner) if partner else None

    @classmethod
    def from_model(cls, invitation: Invitation, now: datetime) -> InvitationType:
        return cls(
            id=str(invitation.id),
            email=invitation.email,
            role=invitation.role,
            status=InvitationState.of(invitation, now),
            invited_by=invitation.invited_by,
            created_at=invitation.created_at,
            expires_at=invitation.expires_at,
            accepted_at=invitation.accepted_at,
            revoked_at=invitation.revoked_at,
            _partner_id=invitation.partner_id,
        )

    resolve_nodes = visible_nodes(
        invitations.invitations_by_ids,
        lambda cls, row, ctx: cls.from_model(row, ctx.services.clock.now()),
    )


@strawberry.type
class InvitationError(UserError):
    code: InvitationErrorCode


@strawberry.input
class InvitationCreateInput:
    email: str
    role: Role
    partner_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The partner a partner role joins (a partner admin's own by default).",
    )
    expires_in_days: int | None = strawberry.field(default=None, description="1 to 90; default 7.")


@strawberry.input
class InvitationResendInput:
    id: strawberry.ID
    expires_in_days: int | None = strawberry.field(default=None, description="1 to 90; default 7.")


@strawberry.input
class InvitationRevokeInput:
    id: strawberry.ID


@strawberry.input
class InvitationAcceptInput:
    token: str = strawberry.field(description="The acceptance token the invitation gave.")
    display_name: str | None = strawberry.field(
        default=None, description="The new user's name; default: the e-mail's local part."
    )


@strawberry.type
class InvitationIssuePayload(Payload[IssuedInvitation], errors=InvitationError):
    invitation: InvitationType | None = None
    token: str | None = strawberry.field(
        default=None,
        description="The one-time acceptance token, shown only in this response: the invitee "
        "signs in and calls invitationAccept with it. A resend replaces it.",
    )
    user_errors: list[InvitationError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: IssuedInvitation, write: Write) -> Self:
        return cls(
            invitation=InvitationType.from_model(result.invitation, write.clock.now()),
            token=result.token,
        )


@strawberry.type
class InvitationRevokePayload(Payload[Invitation], errors=InvitationError):
    invitation: InvitationType | None = None
    user_errors: list[InvitationError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: Invitation, write: Write) -> Self:
        return cls(invitation=InvitationType.from_model(result, write.clock.now()))


@strawberry.type
class InvitationAcceptPayload:
    user: UserType | None = None
    user_errors: list[InvitationError] = strawberry.field(default_factory=list)


class HasIdentity(strawberry.BasePermission):
    """A verified identity-provider token: bound to a user or not (invitationAccept)."""

    message = "Authentication required."
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: Any, info: Info[Context, None], **kwargs: Any) -> bool:
        ctx = info.context
        if ctx.principal is None and ctx.identity is None:
            raise unauthenticated(ctx.auth_failure)
        return True


def _failed(error: DomainError) -> InvitationAcceptPayload:
    return InvitationAcceptPayload(user_errors=InvitationIssuePayload.failed([error]).user_errors)


@strawberry.type
class InvitationsMutation:
    @strawberry.mutation(
        permission_classes=[allowed(INVITATIONS, InvitationOp.CREATE)],
        description="Invite someone by e-mail with a role: a vendor admin any vendor role or "
        "a partner's users, a partner admin its own organisation's users.",
    )
    async def invitation_create(
        self, info: Info[Context, None], input: InvitationCreateInput
    ) -> InvitationIssuePayload:
        notifier = info.context.services.notifier

        async def issue(m: Write) -> IssuedInvitation:
            issued = await invitations.create_invitation(
                m.session, m.principal, m.clock, email=input.email, role=input.role,
                partner_id=m.optional_id(input.partner_id, "Partner"),
                expires_in_days=input.expires_in_days,
            )  # fmt: skip
            await notifier.invitation_issued(m.session, issued)  # the e-mail, if SMTP is set
            return issued

        return await run(info, InvitationIssuePayload, issue)

    @strawberry.mutation(
        permission_classes=[allowed(INVITATIONS, InvitationOp.RESEND)],
        description="A new acceptance token and expiry for a pending or expired invitation; "
        "the previous token stops working.",
    )
    async def invitation_resend(
        self, info: Info[Context, None], input: InvitationResendInput
    ) -> InvitationIssuePayload:
        notifier = info.context.services.notifier

        async def reissue(m: Write) -> IssuedInvitation:
            issued = await invitations.resend_invitation(
                m.session, m.principal, m.clock, invitation_id=m.id(input.id, "Invitation"),
                expires_in_days=input.expires_in_days,
            )  # fmt: skip
            await notifier.invitation_issued(m.session, issued)
            return issued

        return await run(info, InvitationIssuePayload, reissue)

    @strawberry.mutation(
        permission_classes=[allowed(INVITATIONS, InvitationOp.REVOKE)],
        description="Revoke a pending invitation; its token stops working.",
    )
    async def invitation_revoke(
        self, info: Info[Context, None], input: InvitationRevokeInput
    ) -> InvitationRevokePayload:
        return await run(info, InvitationRevokePayload, lambda m: invitations.revoke_invitation(
            m.session, m.principal, m.clock, invitation_id=m.id(input.id, "Invitation")
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[HasIdentity],
        description="Accept an invitation: called with the identity provider's token "
        "(Authorization header) of a sign-in that is not yet bound to a user. Creates the "
        "user (e-mail, role and partner from the invitation) bound to that sign-in; the same "
        "token then authenticates as the new user.",
    )
    async def invitation_accept(
        self, info: Info[Context, None], input: InvitationAcceptInput
    ) -> InvitationAcceptPayload:
        ctx = info.context
        if ctx.identity is None:  # a token that already authenticates as a user
            return _failed(DomainError(
                InvitationErrorCode.SUBJECT_ALREADY_BOUND,
                "This sign-in is already bound to a user.", "token",
            ))  # fmt: skip
        session = ctx.session
        try:
            await begin_write(session)
            user: User = await invitations.accept_invitation(
                session, ctx.identity, ctx.services.clock,
                token=input.token, display_name=input.display_name,
            )  # fmt: skip
            await session.commit()
        except DomainError as error:
            await session.rollback()
            return _failed(error)
        except BaseException:
            await session.rollback()
            raise
        return InvitationAcceptPayload(user=UserType.from_model(user))


@strawberry.type
class InvitationsQuery:
    @strawberry.field(
        permission_classes=[allowed(INVITATIONS, InvitationOp.READ)],
        description="Invitations: a vendor admin sees the vendor's, a partner admin its "
        "organisation's; optionally in one status (e.g. PENDING).",
    )
    async def invitations(
        self,
        info: Info[Context, None],
        status: InvitationState | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[InvitationType] | None:
        ctx = info.context
        now = ctx.services.clock.now()
        return await paginate(
            ctx, invitations.invitations_matching(ctx.caller, now, state=status),
            first=first, after=after, to_node=lambda row: InvitationType.from_model(row, now),
        )  # fmt: skip
