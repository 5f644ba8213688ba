"""Credentials to Principal: JWT bearer tokens (HS256 for development, RS256 with a public
key or JWKS in production), vendor API keys and display keys (office screens). Failures
carry a distinct reason code."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlmodel.ext.asyncio.session import AsyncSession

from api.key_usage import KeyUsage
from api.settings import JWTSettings
from infra.cache import ReadCache, SingleFlight
from infra.clock import Clock
from infra.db import Database
from leaderboards import display_keys
from leaderboards.models import DisplayKey
from partners import repository, service
from partners.invitations import Identity, normalise_email
from partners.models import ApiKey, Partner, PartnerStatus, User, Vendor, VendorStatus
from partners.roles import Principal
from signals.activity import FLUSH_INTERVAL_SECONDS, ActiveUsers


@dataclass(frozen=True)
class AuthFailure:
    reason: str  # one of schema.permissions.AUTH_MESSAGES
    # Set for a valid identity-provider token whose subject no user is bound to (reason
    # UNKNOWN_USER): the one thing it may do is accept an invitation.
    identity: Identity | None = None


class TokenVerifier:
    def __init__(self, settings: JWTSettings) -> None:
        self.settings = settings
        self._jwks: jwt.PyJWKSet | None = None
        if settings.jwks_file is not None:
            self._jwks = jwt.PyJWKSet.from_dict(json.loads(settings.jwks_file.read_text()))

    def _key_for(self, token: str) -> Any:
        if self.settings.algorithm == "HS256":
            return self.settings.secret
        if self._jwks is not None:
            kid = jwt.get_unverified_header(token).get("kid")
            for key in self._jwks.keys:
                if kid is None or key.key_id == kid:
                    return key.key
            raise jwt.InvalidSignatureError("no key with that kid")
        return self.settings.public_key

    def decode(self, token: str, now: datetime) -> dict[str, Any] | AuthFailure:
        s = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=self._key_for(token),
                algorithms=[s.algorithm],
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_seconds,
                options={
                    "require": ["exp", "iat", "sub", "iss", "aud"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            return AuthFailure("BAD_SIGNATURE")
        except jwt.InvalidIssuerError:
            return AuthFailure("INVALID_ISSUER")
        except jwt.InvalidAudienceError:
            return AuthFailure("INVALID_AUDIENCE")
        except jwt.InvalidAlgorithmError:
            return AuthFailure("BAD_SIGNATURE")
        except jwt.PyJWTError:
            return AuthFailure("INVALID_TOKEN")
        # Time claims are checked against the injected clock (not PyJWT's wall clock) so
        # tests and the websocket expiry timer agree with the rest of the service. PyJWT
        # does not check their type when it is not verifying them: a string, NaN, a bool or
        # a date past year 9999 is a malformed token, not an error further down.
        times = {claim: numeric_date(claims.get(claim)) for claim in ("exp", "iat", "nbf")}
        if times["exp"] is None or times["iat"] is None:
            return AuthFailure("INVALID_TOKEN")
        if "nbf" in claims and times["nbf"] is None:
            return AuthFailure("INVALID_TOKEN")
        if now.timestamp() > times["exp"] + s.leeway_seconds:
            return AuthFailure("TOKEN_EXPIRED")
        for claim in ("iat", "nbf"):
            value = times[claim]
            if value is not None and value > now.timestamp() + s.leeway_seconds:
                return AuthFailure("INVALID_TOKEN")
        claims["exp"] = times["exp"]
        return claims


# The latest instant a datetime holds (9999-12-31T23:59:59Z).
_MAX_NUMERIC_DATE = 253_402_300_799


def numeric_date(value: object) -> float | None:
    """A JWT NumericDate (RFC 7519: seconds since the epoch, a JSON number) as a float, or
    None when ``value`` is not one a datetime can hold."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and not 0 <= value <= _MAX_NUMERIC_DATE:
        return None  # before float(), which overflows past 1e308
    seconds = float(value)
    if not 0 <= seconds <= _MAX_NUMERIC_DATE:  # False for NaN too
        return None
    return seconds


# What a principal is read from: a change to any of these drops every cached principal.
PRINCIPAL_TABLES = ("user_account", "partner", "api_key", "vendor", "display_key")


class Authenticator:
    def __init__(
        self,
        jwt_settings: JWTSettings,
        db: Database,
        clock: Clock,
        *,
        activity_flush_seconds: float = FLUSH_INTERVAL_SECONDS,
    ) -> None:
        self.verifier = TokenVerifier(jwt_settings)
        self.identity_claim = jwt_settings.identity_claim
        self.leeway = timedelta(seconds=jwt_settings.leeway_seconds)
        self.db = db
        self.clock = clock
        # Authentication only reads: an API key's last use is written in the background.
        self.key_usage = KeyUsage(db)
        # Partner users' activity, for the active-user signals: noted in memory, written in
        # batches (signals/activity.py).
        self.active_users = ActiveUsers(db, clock, interval=activity_flush_seconds)
        # Credential -> principal: a request would otherwise spend most of its time on the
        # user and partner queries. Exact: entries drop when those tables change anywhere.
        self._principals: ReadCache[str, Principal] = ReadCache(db.epochs, PRINCIPAL_TABLES)
        self._loads: SingleFlight[str, Principal | AuthFailure] = SingleFlight(self._principals)

    async def authenticate(self, authorization: str | None) -> Principal | AuthFailure:
        """Authenticate the value of an Authorization header (or a connection_init field)."""
        if authorization is None or not authorization.strip():
            return AuthFailure("MISSING_CREDENTIALS")
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return AuthFailure("MALFORMED_CREDENTIALS")
        cached = self._principals.get(credential)
        if cached is None:
            outcome = await self._loads.run(credential, lambda: self._load(credential))
        elif cached.expires_at is not None and self.clock.now() > cached.expires_at + self.leeway:
            return AuthFailure("DISPLAY_KEY_EXPIRED" if cached.is_display else "TOKEN_EXPIRED")
        else:
            outcome = cached
        if isinstance(outcome, Principal) and outcome.api_key_id is not None:
            self.key_usage.note(outcome.api_key_id, self.clock.now())
        if (
            isinstance(outcome, Principal)
            and outcome.partner_id is not None
            and outcome.user_id is not None
        ):
            self.active_users.note(outcome.vendor_id, outcome.partner_id, outcome.user_id)
        return outcome

    async def _load(self, credential: str) -> Principal | AuthFailure:
        stamp = self._principals.stamp()
        async with self.db.read_session() as session:
            if credential.startswith(service.API_KEY_PREFIX):
                outcome = await self._api_key(session, credential)
            elif credential.startswith(display_keys.DISPLAY_KEY_PREFIX):
                outcome = await self._display_key(session, credential)
            else:
                outcome = await self._token(session, credential)
        if isinstance(outcome, Principal):
            self._principals.put(credential, outcome, stamp)
        return outcome

    async def _token(self, session: AsyncSession, token: str) -> Principal | AuthFailure:
        claims = self.verifier.decode(token, self.clock.now())
        if isinstance(claims, AuthFailure):
            return claims
        user = await self._user_of(session, claims)
        if user is None:
            return AuthFailure("UNKNOWN_USER", identity=self._identity(claims))
        partner = vendor = None
        if user.active:
            vendor = await repository.get_vendor(session, user.vendor_id)
            if user.partner_id is not None:
                partner = await repository.get_partner(session, user.partner_id)
        expires_at = datetime.fromtimestamp(float(claims["exp"]), UTC)
        return _user_principal(user, partner, expires_at, vendor)

    async def _user_of(self, session: AsyncSession, claims: dict[str, Any]) -> User | None:
        """The user a token's ``sub`` names by id (our own development tokens), else the
        user bound to the token's identity-provider subject (``identity_claim``)."""
        try:
            user = await repository.get_user(session, uuid.UUID(str(claims["sub"])))
        except ValueError:
            user = None
        if user is not None:
            return user
        subject = self._identity(claims).subject
        return None if subject is None else await repository.get_user_by_subject(session, subject)

    def _identity(self, claims: dict[str, Any]) -> Identity:
        """The identity-provider subject of verified claims: the configured claim's value
        (the ``email`` claim counts only when ``email_verified`` is true)."""
        claim = self.identity_claim
        email = claims.get("email")
        verified = claims.get("email_verified") is True
        value = claims.get(claim)
        subject = value if isinstance(value, str) and value.strip() else None
        if claim == "email":  # an address: one spelling, and only once the IdP verified it
            subject = normalise_email(subject) if subject is not None and verified else None
        return Identity(
            subject=subject,
            email=email if isinstance(email, str) else None,
            email_verified=verified,
            claim=claim,
        )

    async def _api_key(self, session: AsyncSession, secret: str) -> Principal | AuthFailure:
        key = await service.verify_api_key(session, secret)
        vendor = await repository.get_vendor(session, key.vendor_id) if key else None
        return _key_principal(key, vendor)

    async def _display_key(self, session: AsyncSession, secret: str) -> Principal | AuthFailure:
        key = await display_keys.verify_display_key(session, secret)
        vendor = await repository.get_vendor(session, key.vendor_id) if key else None
        return _display_principal(key, vendor, self.clock.now() - self.leeway)

    async def current(
        self, principals: Collection[Principal]
    ) -> dict[Principal, Principal | AuthFailure]:
        """What each principal, from a credential that authenticated earlier, would
        authenticate as now: the rows principals come from are read again, in bulk (the
        credential itself - signature, claims, key hash - cannot have changed)."""
        user_ids = {p.user_id for p in principals if p.user_id is not None}
        key_ids = {p.api_key_id for p in principals if p.api_key_id is not None}
        display_ids = {p.display_key_id for p in principals if p.display_key_id is not None}
        async with self.db.read_session() as session:
            users = await repository.get_users(session, user_ids) if user_ids else {}
            partner_ids = {u.partner_id for u in users.values() if u.partner_id is not None}
            partners = await repository.get_partners(session, partner_ids) if partner_ids else {}
            keys = await repository.get_api_keys(session, key_ids) if key_ids else {}
            screens = (
                await display_keys.display_keys_by_ids(session, display_ids) if display_ids else {}
            )
            vendors = await repository.get_vendors(session, {p.vendor_id for p in principals})
        now = self.clock.now()
        outcomes: dict[Principal, Principal | AuthFailure] = {}
        for p in principals:
            if p.display_key_id is not None:
                screen = screens.get(p.display_key_id)
                vendor = vendors.get(screen.vendor_id) if screen else None
                outcomes[p] = _display_principal(screen, vendor, now - self.leeway)
            elif p.expires_at is not None and now > p.expires_at + self.leeway:
                outcomes[p] = AuthFailure("TOKEN_EXPIRED")
            elif p.api_key_id is not None:
                key = keys.get(p.api_key_id)
                live = None if key is None or key.revoked_at else key
                outcomes[p] = _key_principal(live, vendors.get(live.vendor_id) if live else None)
            else:
                user = users.get(p.user_id) if p.user_id is not None else None
                partner = partners.get(user.partner_id) if user and user.partner_id else None
                vendor = vendors.get(user.vendor_id) if user else None
                outcomes[p] = _user_principal(user, partner, p.expires_at, vendor)
        return outcomes


def _user_principal(
    user: User | None,
    partner: Partner | None,
    expires_at: datetime | None,
    vendor: Vendor | None,
) -> Principal | AuthFailure:
    """The principal of a token's user (``partner``: its partner's row, if it has one;
    ``vendor``: its vendor's row)."""
    if user is None:
        return AuthFailure("UNKNOWN_USER")
    if not user.active:
        return AuthFailure("USER_DEACTIVATED")
    if vendor is None or vendor.status is not VendorStatus.ACTIVE:
        return AuthFailure("VENDOR_SUSPENDED")
    if user.partner_id is not None and (
        partner is None or partner.status is not PartnerStatus.ACTIVE
    ):
        return AuthFailure("PARTNER_INACTIVE")
    return principal_for(user, expires_at=expires_at)


def _key_principal(key: ApiKey | None, vendor: Vendor | None) -> Principal | AuthFailure:
    """The principal of a live API key (None: unknown, malformed or revoked) of ``vendor``."""
    if key is None:
        return AuthFailure("INVALID_API_KEY")
    if vendor is None or vendor.status is not VendorStatus.ACTIVE:
        return AuthFailure("VENDOR_SUSPENDED")
    return Principal(vendor_id=key.vendor_id, role=key.role, api_key_id=key.id)


def _display_principal(
    key: DisplayKey | None, vendor: Vendor | None, now: datetime
) -> Principal | AuthFailure:
    """The principal of a display key (None: unknown or malformed) of ``vendor``; ``now``
    less the leeway tokens get."""
    if key is None:
        return AuthFailure("INVALID_DISPLAY_KEY")
    if key.revoked_at is not None:
        return AuthFailure("DISPLAY_KEY_REVOKED")
    if key.expires_at is not None and now > key.expires_at:
        return AuthFailure("DISPLAY_KEY_EXPIRED")
    if vendor is None or vendor.status is not VendorStatus.ACTIVE:
        return AuthFailure("VENDOR_SUSPENDED")
    return display_keys.principal_of(key)


def principal_for(user: User, *, expires_at: datetime | None = None) -> Principal:
    return Principal(
        vendor_id=user.vendor_id,
        role=user.role,
        user_id=user.id,
        partner_id=user.partner_id,
        email=user.email,
        expires_at=expires_at,
    )


def issue_subject_token(
    settings: JWTSettings,
    *,
    subject: str,
    email: str | None = None,
    email_verified: bool = False,
    ttl: timedelta = timedelta(hours=12),
    now: datetime | None = None,
) -> str:
    """A development token for an identity-provider subject that may not be bound to a user
    yet (to try ``invitationAccept`` locally), signed with the shared HS256 secret."""
    if settings.algorithm != "HS256":
        raise ValueError("channelboard only issues HS256 development tokens")
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    if email is not None:
        claims["email"] = email
        claims["email_verified"] = email_verified
    return jwt.encode(claims, settings.secret, algorithm="HS256")


def issue_token(
    settings: JWTSettings,
    user: User,
    *,
    ttl: timedelta = timedelta(hours=12),
    now: datetime | None = None,
) -> str:
    """A development token signed with the shared HS256 secret (production tokens come from
    the identity provider)."""
    if settings.algorithm != "HS256":
        raise ValueError("channelboard only issues HS256 development tokens")
    issued = now or datetime.now(UTC)
    claims = {
        "sub": str(user.id),
        "email": user.email,
        "role": user.role.value,
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    return jwt.encode(claims, settings.secret, algorithm="HS256")
