"""Invitations: how users join a vendor or a partner, and how an identity-provider subject
is bound to a user.

An admin (or an operator, for a vendor's first admin) creates an invitation for an e-mail
address and a role; the answer carries a one-time acceptance token (only its SHA-256 is
stored). The invitee signs in at the identity provider and calls ``accept`` with that token
and the provider's token: the user is created and bound to the provider's subject, and
from then on that subject authenticates as the user.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import false, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from infra import audit
from infra.clock import Clock
from infra.errors import DomainError
from infra.text import identifier_problem, name_problem
from partners.audit_log import log_change
from partners.errors import InvitationErrorCode as Code
from partners.models import Invitation, InvitationStatus, Partner, User, UserSubject
from partners.policy import INVITATIONS, InvitationOp
from partners.roles import PARTNER_ROLES, USER_ROLES, Principal, Role

# The audit log's entity types for what this module changes.
AUDIT_INVITATION = "invitation"
AUDIT_USER = "user"
DEFAULT_EXPIRY_DAYS = 7
MAX_EXPIRY_DAYS = 90
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Operator:
    """Someone acting from the command line with no principal (``channelboard vendors
    create``): may invite any role into any vendor. ``caller`` is what the records name."""

    login: str

    @property
    def caller(self) -> str:
        return f"operator:{self.login}"


@dataclass(frozen=True)
class Identity:
    """A verified identity-provider token whose subject no user is bound to yet: it may
    accept an invitation and nothing else. ``subject`` is the configured claim's value
    (None when the token lacks it or, for the ``email`` claim, it is not verified)."""

    subject: str | None
    email: str | None
    email_verified: bool
    claim: str = "sub"  # the claim ``subject`` was read from (CHANNELBOARD_IDENTITY_CLAIM)


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # shown once; only its hash is stored


class InvitationState(StrEnum):
    """What a caller reads: the stored status, or EXPIRED for a pending one past expiry."""

    PENDING = "PENDING"
    EXPIRED = "EXPIRED"
    ACCEPTED = "ACCEPTED"
    REVOKED = "REVOKED"

    @classmethod
    def of(cls, invitation: Invitation, now: datetime) -> InvitationState:
        if invitation.status is InvitationStatus.PENDING and invitation.expires_at <= now:
            return cls.EXPIRED
        return cls(invitation.status.value)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    token = "cbi_" + secrets.token_urlsafe(32)
    return token, token_hash(token)


def readable_invitations(principal: Principal) -> SelectOfScalar[Invitation]:
    """A vendor admin sees its vendor's invitations, a partner admin its organisation's."""
    if not INVITATIONS.allows(principal, InvitationOp.READ):
        return select(Invitation).where(false())
    stmt = select(Invitation).where(Invitation.vendor_id == principal.vendor_id)
    if principal.role is Role.PARTNER_ADMIN:
        return stmt.where(Invitation.partner_id == principal.partner_id)
    return stmt


def invitations_matching(
    principal: Principal, now: datetime, *, state: InvitationState | None = None
) -> SelectOfScalar[Invitation]:
    """Readable invitations in one state (PENDING, EXPIRED, ACCEPTED, REVOKED) or all."""
    stmt = readable_invitations(principal)
    match state:
        case None:
            return stmt
        case InvitationState.EXPIRED:
            return stmt.where(
                Invitation.status == InvitationStatus.PENDING, Invitation.expires_at <= now
            )
        case InvitationState.PENDING:
            return stmt.where(
                Invitation.status == InvitationStatus.PENDING, Invitation.expires_at > now
            )
    return stmt.where(Invitation.status == InvitationStatus(state.value))


async def create_invitation(
    session: AsyncSession,
    inviter: Principal | Operator,
    clock: Clock,
    *,
    email: str,
    role: Role,
    partner_id: uuid.UUID | None = None,
    expires_in_days: int | None = None,
    vendor_id: uuid.UUID | None = None,
) -> IssuedInvitation:
    """Invite ``email`` with ``role``. A principal invites into its own vendor (a partner
    admin only into its own organisation, and only partner roles); an ``Operator`` names
    the ``vendor_id`` (a vendor's first admin)."""
    if isinstance(inviter, Principal):
        INVITATIONS.require(inviter, InvitationOp.CREATE)
        vendor = inviter.vendor_id
        if inviter.role is Role.PARTNER_ADMIN:
            if role not in PARTNER_ROLES:
                raise DomainError(
                    Code.ROLE_NOT_ALLOWED, "A partner admin invites partner users only.", "role"
                )
            if partner_id is not None and partner_id != inviter.partner_id:
                raise DomainError(Code.NOT_FOUND, "No such partner.", "partnerId")
            partner_id = inviter.partner_id
    else:
        if vendor_id is None:
            raise ValueError("an operator names the vendor")
        vendor = vendor_id
    if role not in USER_ROLES:
        raise DomainError(Code.ROLE_NOT_ALLOWED, "Users take a vendor or a partner role.", "role")
    address = normalise_email(email)
    if problem := identifier_problem(address):
        raise DomainError(Code.INVALID_CHARACTERS, problem, "email")
    if not _EMAIL.match(address) or len(address) > 254:
        raise DomainError(Code.INVALID_EMAIL, "This is not an e-mail address.", "email")
    if role in PARTNER_ROLES:
        if partner_id is None:
            raise DomainError(Code.REQUIRED, "A partner role needs a partner.", "partnerId")
        partner = await session.get(Partner, partner_id)
        if partner is None or partner.vendor_id != vendor:
            raise DomainError(Code.NOT_FOUND, "No such partner.", "partnerId")
    elif partner_id is not None:
        raise DomainError(Code.INVALID, "Vendor roles belong to no partner.", "partnerId")
    days = DEFAULT_EXPIRY_DAYS if expires_in_days is None else expires_in_days
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise DomainError(
            Code.INVALID, f"Expiry must be 1 to {MAX_EXPIRY_DAYS} days.", "expiresInDays"
        )
    await _refuse_existing_user(session, vendor, address)
    now = clock.now()
    token, digest = _new_token()
    invitation = Invitation(
        vendor_id=vendor,
        partner_id=partner_id,
        email=address,
        role=role,
        token_hash=digest,
        invited_by=inviter.caller,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(invitation)
    await session.flush()
    after = {
        "email": address, "role": role, "partner_id": partner_id,
        "expires_at": invitation.expires_at, "status": invitation.status,
    }  # fmt: skip
    if isinstance(inviter, Principal):
        await log_change(
            session, inviter, clock, action="invitation.created", entity_type=AUDIT_INVITATION,
            entity_id=invitation.id, before=None, after=after,
        )  # fmt: skip
    else:
        await audit.record(
            session, vendor_id=vendor, actor=inviter.caller, action="invitation.created",
            entity_type=AUDIT_INVITATION, entity_id=str(invitation.id), before=None,
            after=after, reason=None, at=now,
        )  # fmt: skip
    return IssuedInvitation(invitation, token)


async def _refuse_existing_user(
    session: AsyncSession, vendor_id: uuid.UUID | None, email: str
) -> None:
    """DUPLICATE_EMAIL when a user (active or not) has the address: in the vendor, or
    anywhere when ``vendor_id`` is None."""
    stmt = select(User.id).where(func.lower(User.email) == email)
    if vendor_id is not None:
        stmt = stmt.where(User.vendor_id == vendor_id)
    if (await session.exec(stmt)).first() is not None:
        raise DomainError(
            Code.DUPLICATE_EMAIL, "A user with this e-mail address already exists.", "email"
        )


async def _readable(
    session: AsyncSession, principal: Principal, invitation_id: uuid.UUID, *, lock: bool = False
) -> Invitation:
    """The invitation, if the principal may read it; ``lock``: held until the transaction
    ends (for a change: an accept committed after this read would otherwise be overwritten,
    an accepted invitation shown as revoked while its user signs in)."""
    stmt = readable_invitations(principal).where(Invitation.id == invitation_id)
    result = await session.exec(stmt.with_for_update() if lock else stmt)
    invitation = result.first()
    if invitation is None:
        raise DomainError(Code.NOT_FOUND, "No such invitation.", "id")
    return invitation


def _refuse_closed(invitation: Invitation, field: str | None) -> None:
    if invitation.status is InvitationStatus.ACCEPTED:
        raise DomainError(Code.INVITATION_USED, "This invitation was already accepted.", field)
    if invitation.status is InvitationStatus.REVOKED:
        raise DomainError(Code.INVITATION_REVOKED, "This invitation was revoked.", field)


async def resend_invitation(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    invitation_id: uuid.UUID,
    expires_in_days: int | None = None,
) -> IssuedInvitation:
    """A new token (the old one stops working) and a new expiry, for a pending (or
    expired) invitation."""
    INVITATIONS.require(principal, InvitationOp.RESEND)
    invitation = await _readable(session, principal, invitation_id, lock=True)
    _refuse_closed(invitation, "id")
    days = DEFAULT_EXPIRY_DAYS if expires_in_days is None else expires_in_days
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise DomainError(
            Code.INVALID, f"Expiry must be 1 to {MAX_EXPIRY_DAYS} days.", "expiresInDays"
        )
    token, before = await _renew(session, clock, invitation, days)
    await log_change(
        session, principal, clock, action="invitation.resent", entity_type=AUDIT_INVITATION,
        entity_id=invitation.id, before=before, after=_renewed(invitation),
    )  # fmt: skip
    return IssuedInvitation(invitation, token)


async def reissue_first_admin_invitation(
    session: AsyncSession, operator: Operator, clock: Clock, invitation: Invitation
) -> IssuedInvitation:
    """A new token (the old one stops working) and a new expiry for a vendor's pending
    first-admin invitation, issued by the operator (``partners.vendors.create_vendor`` run
    again: the first run's token was never shown, or was lost). The caller holds the
    vendor's lock."""
    token, before = await _renew(session, clock, invitation, DEFAULT_EXPIRY_DAYS)
    await audit.record(
        session, vendor_id=invitation.vendor_id, actor=operator.caller,
        action="invitation.resent", entity_type=AUDIT_INVITATION, entity_id=str(invitation.id),
        before=before, after=_renewed(invitation), reason="vendors create run again",
        at=clock.now(),
    )  # fmt: skip
    return IssuedInvitation(invitation, token)


async def _renew(
    session: AsyncSession, clock: Clock, invitation: Invitation, days: int
) -> tuple[str, dict[str, Any]]:
    """A new token for ``invitation`` (the old one stops working), expiring in ``days``:
    the token, and what the audit entry records as before. The token itself never goes in
    the log; "token" marks that a new one was issued."""
    token, digest = _new_token()
    before = {"expires_at": invitation.expires_at, "token": "replaced"}
    invitation.token_hash = digest
    invitation.expires_at = clock.now() + timedelta(days=days)
    session.add(invitation)
    await session.flush()
    return token, before


def _renewed(invitation: Invitation) -> dict[str, Any]:
    return {"expires_at": invitation.expires_at, "token": "new"}


async def revoke_invitation(
    session: AsyncSession, principal: Principal, clock: Clock, *, invitation_id: uuid.UUID
) -> Invitation:
    INVITATIONS.require(principal, InvitationOp.REVOKE)
    invitation = await _readable(session, principal, invitation_id, lock=True)
    _refuse_closed(invitation, "id")
    invitation.status = InvitationStatus.REVOKED
    invitation.revoked_at = clock.now()
    session.add(invitation)
    await session.flush()
    await log_change(
        session, principal, clock, action="invitation.revoked", entity_type=AUDIT_INVITATION,
        entity_id=invitation.id, before={"status": InvitationStatus.PENDING},
        after={"status": invitation.status},
    )  # fmt: skip
    return invitation


async def accept_invitation(
    session: AsyncSession,
    identity: Identity,
    clock: Clock,
    *,
    token: str,
    display_name: str | None = None,
) -> User:
    """Create the invited user, bound to the identity's subject. Exactly one of several
    concurrent accepts of one invitation succeeds: the invitation moves out of PENDING by a
    conditional update, which the others then find already done (INVITATION_USED; or
    INVITATION_REVOKED, or INVALID_TOKEN, when a revoke or a resend got there first). It comes
    before the checks of the subject and the address: on PostgreSQL (READ COMMITTED) those
    would see the winner's user once committed, and refuse a loser for the wrong reason."""
    given_name = (display_name or "").strip()
    if given_name and (problem := name_problem(given_name)):
        raise DomainError(Code.INVALID_CHARACTERS, problem, "display_name")
    result = await session.exec(
        select(Invitation).where(Invitation.token_hash == token_hash(token.strip()))
    )
    invitation = result.first()
    if invitation is None:
        raise DomainError(Code.INVALID_TOKEN, "This invitation token is not valid.", "token")
    _refuse_closed(invitation, "token")
    claim = identity.claim
    now = clock.now()
    if invitation.expires_at <= now:
        raise DomainError(Code.INVITATION_EXPIRED, "This invitation has expired.", "token")
    if identity.subject is None:
        if claim == "email" and identity.email is not None:
            raise DomainError(
                Code.EMAIL_NOT_VERIFIED, "The identity provider has not verified the e-mail."
            )
        raise DomainError(Code.INVALID_TOKEN, f"The sign-in token has no '{claim}' claim.")
    if claim == "email" and normalise_email(identity.subject) != invitation.email:
        raise DomainError(
            Code.EMAIL_MISMATCH, "The signed-in e-mail is not the invited one.", "token"
        )
    # Claim the invitation first: a concurrent accept waits on this row (PostgreSQL) or on
    # the write lock (SQLite), then matches nothing. A refusal below rolls the claim back.
    claimed = await session.execute(
        update(Invitation)
        .where(
            col(Invitation.id) == invitation.id,
            col(Invitation.status) == InvitationStatus.PENDING,
            col(Invitation.token_hash) == invitation.token_hash,
        )
        .values(status=InvitationStatus.ACCEPTED, accepted_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        # Another transaction moved it first: accepted, revoked, or given a new token. Read
        # what it committed, so the refusal names that (as when it came first).
        await session.refresh(invitation)
        _refuse_closed(invitation, "token")
        raise DomainError(Code.INVALID_TOKEN, "This invitation token is not valid.", "token")
    if await session.get(UserSubject, identity.subject) is not None:
        raise DomainError(
            Code.SUBJECT_ALREADY_BOUND, "This sign-in is already bound to a user.", "token"
        )
    # A user's e-mail address is unique across vendors (user_account.email), so an address
    # that has an account with any vendor cannot get a second one.
    await _refuse_existing_user(session, None, invitation.email)
    name = given_name or invitation.email.split("@", 1)[0]
    user = User(
        vendor_id=invitation.vendor_id,
        partner_id=invitation.partner_id,
        email=invitation.email,
        display_name=name[:200],
        role=invitation.role,
        created_at=now,
    )
    # The address or the subject may have been taken since they were checked (another
    # invitation of the address, or of the sign-in, accepted meanwhile): the same refusal
    # as when the other came first.
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # user_account.email
        raise DomainError(
            Code.DUPLICATE_EMAIL, "A user with this e-mail address already exists.", "email"
        ) from exc
    session.add(UserSubject(subject=identity.subject, user_id=user.id, bound_at=now))
    try:
        await session.flush()
    except IntegrityError as exc:  # user_subject's primary key
        raise DomainError(
            Code.SUBJECT_ALREADY_BOUND, "This sign-in is already bound to a user.", "token"
        ) from exc
    await session.execute(
        update(Invitation)
        .where(col(Invitation.id) == invitation.id)
        .values(accepted_user_id=user.id)
    )
    await session.refresh(invitation)
    # The new user is the actor: it accepted, with the identity it is now bound to.
    actor = f"user:{user.id}"
    await audit.record(
        session, vendor_id=user.vendor_id, actor=actor, action="invitation.accepted",
        entity_type=AUDIT_INVITATION, entity_id=str(invitation.id),
        before={"status": InvitationStatus.PENDING},
        after={"status": InvitationStatus.ACCEPTED, "accepted_user_id": user.id},
        reason=None, at=now,
    )  # fmt: skip
    await audit.record(
        session, vendor_id=user.vendor_id, actor=actor, action="user.created",
        entity_type=AUDIT_USER, entity_id=str(user.id), before=None,
        after={"email": user.email, "role": user.role, "partner_id": user.partner_id,
               "subject": identity.subject, "invitation_id": invitation.id},
        reason=None, at=now,
    )  # fmt: skip
    return user


async def invitations_by_ids(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Invitation]:
    rows = await session.exec(readable_invitations(principal).where(col(Invitation.id).in_(ids)))
    return {i.id: i for i in rows}
