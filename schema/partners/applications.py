"""Partner applications (issue 12): the unauthenticated `partnerApply` and
`partnerApplicationStatus`, and the reviewers' list, approve and reject. Rules in
partners/applications.py."""

from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry
from strawberry import Info, relay

from infra.db import begin_write
from infra.errors import DomainError, DomainErrors
from partners import applications
from partners.errors import ApplicationErrorCode
from partners.models import ApplicationStatus, PartnerApplication
from partners.policy import APPLICATIONS, ApplicationOp
from schema.context import Context
from schema.errors import UserError, user_errors
from schema.mutations import Payload, Write, run
from schema.partners.invitations import InvitationType
from schema.permissions import Public, allowed
from schema.relay import Connection, paginate, visible_nodes

ApplicationStatusEnum = strawberry.enum(ApplicationStatus)


@strawberry.type
class ApplicationError(UserError):
    code: ApplicationErrorCode


@strawberry.type(
    name="PartnerApplication",
    description="An application to join a vendor's partner program (reviewers).",
)
class PartnerApplicationType(relay.Node):
    id: relay.NodeID[str]
    reference: str
    company: str
    contact_name: str
    contact_email: str
    country: str
    message: str
    status: ApplicationStatus
    rejection_reason: str | None
    created_at: datetime
    decided_at: datetime | None
    partner_id: strawberry.ID | None = strawberry.field(
        description="The Partner created on approval."
    )

    @classmethod
    def from_model(cls, a: PartnerApplication) -> PartnerApplicationType:
        return cls(
            id=str(a.id), reference=a.reference, company=a.company, contact_name=a.contact_name,
            contact_email=a.contact_email, country=a.country, message=a.message,
            status=a.status, rejection_reason=a.rejection_reason, created_at=a.created_at,
            decided_at=a.decided_at,
            partner_id=strawberry.ID(str(relay.GlobalID("Partner", str(a.partner_id))))
            if a.partner_id else None,
        )  # fmt: skip

    resolve_nodes = visible_nodes(applications.applications_by_ids)


@strawberry.type(description="What an applicant may know of its application.")
class PartnerApplicationStatus:
    reference: str
    status: ApplicationStatus
    rejection_reason: str | None = strawberry.field(description="Set when REJECTED.")


@strawberry.input
class PartnerApplyInput:
    vendor_slug: str = strawberry.field(description="The program's vendor, e.g. 'northwind'.")
    company: str
    contact_name: str
    contact_email: str
    country: str = strawberry.field(description="ISO 3166-1 alpha-2, e.g. DE.")
    message: str = ""


@strawberry.input
class PartnerApplicationApproveInput:
    id: strawberry.ID
    region: str = strawberry.field(description="The new partner's region, e.g. EMEA.")


@strawberry.input
class PartnerApplicationRejectInput:
    id: strawberry.ID
    reason: str = strawberry.field(description="Required; the applicant reads it.")


@strawberry.type
class PartnerApplyPayload:
    reference: str | None = strawberry.field(
        default=None,
        description="Keep it: partnerApplicationStatus(reference) answers with the status.",
    )
    user_errors: list[ApplicationError] = strawberry.field(default_factory=list)


@strawberry.type
class PartnerApplicationPayload(Payload[PartnerApplication], errors=ApplicationError):
    application: PartnerApplicationType | None = None
    user_errors: list[ApplicationError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: PartnerApplication, write: Write) -> Self:
        return cls(application=PartnerApplicationType.from_model(result))


@strawberry.type
class PartnerApplicationApprovePayload(Payload[applications.Approval], errors=ApplicationError):
    application: PartnerApplicationType | None = None
    invitation: InvitationType | None = strawberry.field(
        default=None, description="The invitation of the applicant (null: not invited)."
    )
    invitation_token: str | None = strawberry.field(
        default=None,
        description="The invitation's one-time acceptance token, shown only in this "
        "response: send it to the applicant (invitationAccept).",
    )
    user_errors: list[ApplicationError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: applications.Approval, write: Write) -> Self:
        issued = result.invitation
        return cls(
            application=PartnerApplicationType.from_model(result.application),
            invitation=InvitationType.from_model(issued.invitation, write.clock.now())
            if issued else None,
            invitation_token=issued.token if issued else None,
        )  # fmt: skip


def client_address(info: Info[Context, None]) -> str:
    """The ASGI client's address (uvicorn applies X-Forwarded-For only from
    --forwarded-allow-ips: see the README's CHANNELBOARD_APPLY_LIMIT_PER_ADDRESS)."""
    request = info.context.request
    client = getattr(request, "client", None)
    return str(client.host) if client is not None and client.host else "unknown"


@strawberry.type
class ApplicationsQuery:
    @strawberry.field(
        permission_classes=[Public],
        description="The status of an application, by the reference partnerApply gave. No "
        "authentication; null for an unknown reference.",
    )
    async def partner_application_status(
        self, info: Info[Context, None], reference: str
    ) -> PartnerApplicationStatus | None:
        found = await applications.status_of(info.context.session, reference)
        if found is None:
            return None
        return PartnerApplicationStatus(
            reference=found.reference, status=found.status,
            rejection_reason=found.rejection_reason,
        )  # fmt: skip

    @strawberry.field(
        permission_classes=[allowed(APPLICATIONS, ApplicationOp.APPLICATIONS_READ)],
        description="Applications to your vendor's program, newest first. Vendor admins and "
        "channel managers.",
    )
    async def partner_applications(
        self,
        info: Info[Context, None],
        status: ApplicationStatus | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[PartnerApplicationType] | None:
        stmt = applications.readable_applications(info.context.caller, status)
        return await paginate(
            info.context, stmt, first=first, after=after,
            to_node=PartnerApplicationType.from_model,
        )  # fmt: skip


@strawberry.type
class ApplicationsMutation:
    @strawberry.mutation(
        permission_classes=[Public],
        description="Apply to join a vendor's partner program. No authentication. Answers a "
        "reference whether or not the vendor slug exists (an unknown one is never reviewed). "
        "Throttled per client address and per e-mail (RATE_LIMITED).",
    )
    async def partner_apply(
        self, info: Info[Context, None], input: PartnerApplyInput
    ) -> PartnerApplyPayload:
        ctx = info.context
        session = ctx.session
        form = applications.ApplicationForm(
            vendor_slug=input.vendor_slug, company=input.company,
            contact_name=input.contact_name, contact_email=input.contact_email,
            country=input.country, message=input.message,
        )  # fmt: skip
        try:
            await begin_write(session)
            application = await applications.apply(
                session, ctx.services.clock, form=form, client_address=client_address(info),
                limits=ctx.services.application_limits,
            )  # fmt: skip
            await session.commit()
            ctx.services.outbox.notify()  # its PartnerApplied event (whatever the slug)
        except DomainError as error:
            await session.rollback()
            return PartnerApplyPayload(user_errors=user_errors([error], ApplicationError))
        except DomainErrors as errors:
            await session.rollback()
            return PartnerApplyPayload(user_errors=user_errors(errors.errors, ApplicationError))
        except BaseException:
            await session.rollback()
            raise
        return PartnerApplyPayload(reference=application.reference)

    @strawberry.mutation(
        permission_classes=[allowed(APPLICATIONS, ApplicationOp.APPLICATION_APPROVE)],
        description="Approve an application: creates the partner (the company's name, the "
        "applicant as its contact) and, when a vendor admin approves, invites the applicant "
        "as its first PARTNER_ADMIN (a channel manager's approval creates the partner only; "
        "a vendor admin then invites).",
    )
    async def partner_application_approve(
        self, info: Info[Context, None], input: PartnerApplicationApproveInput
    ) -> PartnerApplicationApprovePayload:
        return await run(info, PartnerApplicationApprovePayload, lambda m: applications.approve(
            m.session, m.principal, m.clock, application_id=m.id(input.id, "PartnerApplication"),
            region=input.region,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(APPLICATIONS, ApplicationOp.APPLICATION_REJECT)],
        description="Reject an application with a reason the applicant reads.",
    )
    async def partner_application_reject(
        self, info: Info[Context, None], input: PartnerApplicationRejectInput
    ) -> PartnerApplicationPayload:
        return await run(info, PartnerApplicationPayload, lambda m: applications.reject(
            m.session, m.principal, m.clock, application_id=m.id(input.id, "PartnerApplication"),
            reason=input.reason,
        ))  # fmt: skip
