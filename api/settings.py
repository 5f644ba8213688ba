"""Configuration from CHANNELBOARD_* environment variables, with working laptop defaults.

``Settings`` is a pydantic-settings model with one field per variable (the README's table):
pydantic parses and checks each value, and a bad one is reported as one line naming its
variable. The code reads the settings in groups (``settings.jwt``, ``settings.limits``,
``settings.storage``, ``settings.cors``), whose defaults are the fields' defaults.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from infra.db import Waits
from notifications.smtp import SmtpSettings

DEVELOPMENT_SECRET = "channelboard-development-secret-do-not-use-in-production"
PREFIX = "CHANNELBOARD_"


class SettingsError(ValueError):
    """Configuration that the service refuses to start with."""


@dataclass(frozen=True)
class JWTSettings:
    algorithm: str = "HS256"
    secret: str = DEVELOPMENT_SECRET
    public_key: str | None = None  # PEM text, for RS256
    jwks_file: Path | None = None  # a JWKS document on disk, for RS256 with key rotation
    issuer: str = "channelboard-dev"
    audience: str = "channelboard"
    leeway_seconds: int = 30
    # The claim an identity-provider subject is read from when binding it to a user
    # (CHANNELBOARD_IDENTITY_CLAIM): "sub", or "email" (only with email_verified: true).
    identity_claim: str = "sub"


@dataclass(frozen=True)
class Limits:
    max_query_depth: int = 12
    max_aliases: int = 20
    max_tokens: int = 2_000
    max_page_size: int = 100  # not a variable: clients are told it in the schema
    max_body_bytes: int = 1 << 20
    max_upload_bytes: int = 10 << 20
    ws_max_subscriptions: int = 5
    ws_init_timeout_seconds: float = 3.0
    # Checked on every document before validation (schema.document_limits).
    max_document_bytes: int = 32 << 10
    max_selections: int = 500
    max_repeated_fields: int = 10
    max_introspection_depth: int = 15
    # Websockets (api.ws_limits).
    ws_max_message_bytes: int = 256 << 10
    ws_max_connections_per_principal: int = 20
    # Seconds between the legacy graphql-ws protocol's keep-alives (`ka`, one right after
    # connection_ack, then one per period, as subscriptions-transport-ws sends them); 0: none.
    ws_legacy_keep_alive_seconds: float = 15.0


@dataclass(frozen=True)
class StorageSettings:
    """Where uploaded files live: ``local`` (a directory, default ``<var>/attachments``)
    or ``s3`` (an S3-compatible bucket; needs the optional boto3 dependency)."""

    backend: str = "local"
    local_dir: Path | None = None
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_prefix: str = "attachments/"


@dataclass(frozen=True)
class CorsSettings:
    """Which other origins' pages may call the API from a browser (api/cors.py): exact
    origins as browsers send them (``https://portal.example.com``), or ``("*",)`` for any
    (without credentials only); empty: same-origin only. The same list decides which
    cross-origin pages may open a websocket."""

    origins: tuple[str, ...] = ()
    allow_credentials: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.origins)


_JWT, _LIMITS, _STORAGE = JWTSettings(), Limits(), StorageSettings()

# Each group's fields -> the Settings field (the variable) that holds it.
_JWT_FIELDS = {
    f.name: f.name if f.name == "identity_claim" else f"jwt_{f.name}" for f in fields(JWTSettings)
}
_LIMIT_FIELDS = {f.name: f.name for f in fields(Limits) if f.name != "max_page_size"}
_STORAGE_FIELDS = {
    "backend": "storage_backend",
    "local_dir": "storage_dir",
    **{f.name: f.name for f in fields(StorageSettings) if f.name.startswith("s3_")},
}
_GROUPS: dict[str, dict[str, str]] = {
    "jwt": _JWT_FIELDS,
    "limits": _LIMIT_FIELDS,
    "storage": _STORAGE_FIELDS,
}


class Settings(BaseSettings):
    """Field ``x`` is the variable ``CHANNELBOARD_X`` (empty counts as unset)."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    env: Literal["development", "test", "production"] = "development"
    var_dir: Path = Path("var")
    database_url: str = ""  # default: a SQLite file in var_dir
    # PostgreSQL ends a session that sits idle inside a transaction this long (a process
    # stopped or hung mid-transaction), releasing its locks; 0: never (infra.db.Waits).
    database_idle_in_transaction_timeout_seconds: float = Field(300.0, ge=0)
    # SQLite: how long a writer waits for the write lock before "database is locked".
    sqlite_busy_timeout_seconds: float = Field(30.0, gt=0)
    redis_url: str | None = None
    # True: redis_url is one node of a Redis Cluster (7+); the others are discovered from it.
    redis_cluster: bool = False
    redis_namespace: str = "cb"
    log_level: str = "info"
    # "inline": each API process dispatches outbox events itself (the embedded default).
    # "external": API processes leave that to a `channelboard dispatch` process.
    dispatch: Literal["inline", "external"] = "inline"
    # An outbox event whose handler keeps failing is dead-lettered after this many attempts,
    # waiting 1 s, 2 s, 4 s, ... (at most outbox_backoff_cap_seconds) between them.
    outbox_max_attempts: int = Field(10, ge=1)
    outbox_backoff_cap_seconds: int = Field(300, ge=1)
    # Above 1 (PostgreSQL only): dispatchers share the outbox in this many partitions, each
    # leasing its share (infra/outbox_partitions.py); 1: one dispatcher at a time.
    outbox_partitions: int = Field(1, ge=1, le=1024)
    # Unauthenticated partner applications (partnerApply) per hour, per client address and
    # per contact e-mail (partners/applications.py).
    apply_limit_per_address: int = Field(5, ge=1)
    apply_limit_per_email: int = Field(3, ge=1)
    # Webhooks (webhooks/): private, loopback, link-local, ... targets are refused unless
    # allowed (tests, closed networks); each request's timeout; requests in flight at once.
    webhooks_allow_private_targets: bool = False
    webhooks_timeout_seconds: float = Field(10.0, gt=0, le=60)
    webhooks_concurrency: int = Field(64, ge=1, le=1000)
    # Seconds between writes of the partner users seen active (signals/activity.py).
    signals_activity_flush_seconds: float = Field(60.0, gt=0)
    # Seconds between the daily snapshot job's checks (signals/daily.py); 0: this process
    # does not run it (another one does: a dispatcher process, or an API process).
    signals_daily_interval_seconds: float = Field(60.0, ge=0)
    # How long an idempotency key replays its first result (infra/idempotency.py): at
    # least 24 hours (what clients of Stripe-style keys count on), at most a year (a value
    # meant in seconds or minutes is refused rather than keeping every key for decades).
    idempotency_key_retention_hours: int = Field(168, ge=24, le=8760)

    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_secret: str = _JWT.secret
    jwt_public_key: str | None = None  # PEM text, or a path to a PEM file
    jwt_jwks_file: Path | None = None
    jwt_issuer: str = _JWT.issuer
    jwt_audience: str = _JWT.audience
    jwt_leeway_seconds: int = _JWT.leeway_seconds
    identity_claim: str = Field(_JWT.identity_claim, min_length=1, max_length=64)

    max_query_depth: int = _LIMITS.max_query_depth
    max_aliases: int = _LIMITS.max_aliases
    max_tokens: int = _LIMITS.max_tokens
    max_body_bytes: int = _LIMITS.max_body_bytes
    max_upload_bytes: int = _LIMITS.max_upload_bytes
    ws_max_subscriptions: int = _LIMITS.ws_max_subscriptions
    ws_init_timeout_seconds: float = _LIMITS.ws_init_timeout_seconds
    max_document_bytes: int = _LIMITS.max_document_bytes
    max_selections: int = _LIMITS.max_selections
    max_repeated_fields: int = _LIMITS.max_repeated_fields
    max_introspection_depth: int = _LIMITS.max_introspection_depth
    ws_max_message_bytes: int = _LIMITS.ws_max_message_bytes
    ws_max_connections_per_principal: int = _LIMITS.ws_max_connections_per_principal
    ws_legacy_keep_alive_seconds: float = Field(_LIMITS.ws_legacy_keep_alive_seconds, ge=0)

    storage_backend: Literal["local", "s3"] = Field("local", validation_alias=f"{PREFIX}STORAGE")
    storage_dir: Path | None = None
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_prefix: str = _STORAGE.s3_prefix

    # E-mail notifications (notifications/sender.py): off while no SMTP host is set.
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_user: str | None = None
    smtp_password: str | None = None
    mail_from: str = Field("channelboard@localhost", min_length=3, max_length=254)
    # A CA bundle (PEM) to verify the SMTP server's certificate with instead of the system's
    # (a relay with a certificate from an internal CA).
    smtp_ca_file: Path | None = None
    # The invitation e-mail's link, with {token} where the acceptance token goes (unset:
    # the e-mail gives the token to use with invitationAccept).
    invitation_url: str | None = None

    # Browsers on other origins (api/cors.py): exact origins, comma-separated, or * (any,
    # without credentials); unset: same-origin only.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # Access-Control-Allow-Credentials: only for front ends that fetch with
    # credentials: 'include' (the API itself reads bearer tokens, never cookies).
    cors_allow_credentials: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """From ``environ`` (``os.environ`` unless given: tests pass a mapping), only."""
        source = _Environment(cls, os.environ if environ is None else environ)
        # pydantic-settings' documented ``_build_sources``: this source alone (mypy sees
        # only the fields in the generated __init__).
        return _checked(lambda: cls(_build_sources=((source,), {})))  # type: ignore[call-arg]

    @classmethod
    def variables(cls) -> set[str]:
        """The names of every variable read."""
        return {
            f.validation_alias if isinstance(f.validation_alias, str) else PREFIX + name.upper()
            for name, f in cls.model_fields.items()
        }

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with some fields (or whole groups: ``jwt=``, ``limits=``, ``storage=``)
        replaced, checked like the environment's values."""
        values: dict[str, Any] = self.model_dump()
        for name, value in changes.items():
            if name in _GROUPS:
                values.update({f: getattr(value, g) for g, f in _GROUPS[name].items()})
            elif name in type(self).model_fields:
                values[name] = value
            else:
                raise TypeError(f"no setting {name!r}")
        return _checked(lambda: type(self).model_validate(values))

    @field_validator("env", "log_level", "dispatch", "storage_backend", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("jwt_public_key")
    @classmethod
    def _read_pem_file(cls, value: str | None) -> str | None:
        if value and not value.lstrip().startswith("-----") and Path(value).is_file():
            return Path(value).read_text()
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list | tuple):
            return value
        listed = [str(v).strip() for v in value if str(v).strip()]
        if "*" in listed:
            if len(listed) > 1:
                raise SettingsError(
                    "CHANNELBOARD_CORS_ORIGINS: * (any origin) goes alone, not in a list"
                )
            return ("*",)
        return tuple(dict.fromkeys(origin_of(v) for v in listed))

    @model_validator(mode="before")
    @classmethod
    def _default_database(cls, values: Any) -> Any:
        if isinstance(values, dict) and not values.get("database_url"):
            var_dir = Path(values.get("var_dir") or "var")
            return {**values, "database_url": default_database_url(var_dir)}
        return values

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_database_url(self.database_url)
        if self.redis_cluster and not self.redis_url:
            raise SettingsError(
                "CHANNELBOARD_REDIS_CLUSTER needs CHANNELBOARD_REDIS_URL (a node of the cluster)"
            )
        if "{" in self.redis_namespace or "}" in self.redis_namespace:
            raise SettingsError("CHANNELBOARD_REDIS_NAMESPACE may not contain { or }")
        if self.outbox_partitions > 1 and self.database_url.startswith("sqlite"):
            raise SettingsError(
                "CHANNELBOARD_OUTBOX_PARTITIONS above 1 needs PostgreSQL (SQLite has one "
                "writer: one dispatcher at a time)"
            )
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise SettingsError("CHANNELBOARD_STORAGE=s3 needs CHANNELBOARD_S3_BUCKET")
        if self.jwt_algorithm == "RS256" and not (self.jwt_public_key or self.jwt_jwks_file):
            raise SettingsError(
                "RS256 needs CHANNELBOARD_JWT_PUBLIC_KEY or CHANNELBOARD_JWT_JWKS_FILE"
            )
        if self.cors_allow_credentials and not self.cors_origins:
            raise SettingsError(
                "CHANNELBOARD_CORS_ALLOW_CREDENTIALS needs CHANNELBOARD_CORS_ORIGINS"
            )
        if self.cors_allow_credentials and self.cors_origins == ("*",):
            raise SettingsError(
                "CHANNELBOARD_CORS_ORIGINS=* cannot be combined with "
                "CHANNELBOARD_CORS_ALLOW_CREDENTIALS: list the origins that may send "
                "credentials (browsers refuse credentials with *)"
            )
        if self.production and self.jwt_algorithm == "HS256":
            if self.jwt_secret == DEVELOPMENT_SECRET:
                raise SettingsError(
                    "refusing to run in production with the development JWT secret: set "
                    "CHANNELBOARD_JWT_SECRET (HS256) or use RS256 with a public key or JWKS"
                )
            if len(self.jwt_secret) < 32:
                raise SettingsError("CHANNELBOARD_JWT_SECRET must be at least 32 characters")
        return self

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def embedded_database(self) -> bool:
        return self.database_url == default_database_url(self.var_dir)

    @cached_property
    def database_waits(self) -> Waits:
        """How long a transaction may sit idle, or a writer wait (``infra.db.Waits``)."""
        return Waits(
            idle_in_transaction_seconds=self.database_idle_in_transaction_timeout_seconds,
            sqlite_busy_seconds=self.sqlite_busy_timeout_seconds,
        )

    @property
    def idempotency_key_retention(self) -> timedelta:
        return timedelta(hours=self.idempotency_key_retention_hours)

    @cached_property
    def jwt(self) -> JWTSettings:
        return JWTSettings(**{g: getattr(self, f) for g, f in _JWT_FIELDS.items()})

    @cached_property
    def limits(self) -> Limits:
        return Limits(**{g: getattr(self, f) for g, f in _LIMIT_FIELDS.items()})

    @cached_property
    def smtp(self) -> SmtpSettings | None:
        """The SMTP server to send notifications through; None: e-mail is off."""
        if not self.smtp_host:
            return None
        return SmtpSettings(
            host=self.smtp_host, port=self.smtp_port, security=self.smtp_security,
            username=self.smtp_user, password=self.smtp_password, from_address=self.mail_from,
            ca_file=str(self.smtp_ca_file) if self.smtp_ca_file else None,
        )  # fmt: skip

    @cached_property
    def storage(self) -> StorageSettings:
        return StorageSettings(**{g: getattr(self, f) for g, f in _STORAGE_FIELDS.items()})

    @cached_property
    def cors(self) -> CorsSettings:
        return CorsSettings(self.cors_origins, self.cors_allow_credentials)


# The async drivers this code runs on (the dependencies install these two).
DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


def _check_database_url(url: str) -> None:
    """A URL SQLAlchemy cannot parse, or one for a driver this code does not run on, is a
    configuration error named here, not a driver's traceback at the first query."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

    try:
        driver = make_url(url).drivername
    except ArgumentError:
        raise SettingsError("CHANNELBOARD_DATABASE_URL is not a database URL") from None
    if driver not in DATABASE_DRIVERS:
        raise SettingsError(
            f"CHANNELBOARD_DATABASE_URL: the driver {driver!r} is not one this code runs on "
            f"(use {' or '.join(d + '://' for d in DATABASE_DRIVERS)})"
        )


def default_database_url(var_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{var_dir / 'channelboard.db'}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(text: str) -> str:
    """``text`` as browsers send an Origin header: ``scheme://host[:port]``, scheme and
    host in lower case, no default port (a trailing ``/`` is dropped). Anything else is
    refused: a path, query or user name (an origin has none), another scheme, ``null``
    (the shared origin of sandboxed frames and local files), a pattern."""
    problem = _origin_problem(text)
    if problem is not None:
        raise SettingsError(f"CHANNELBOARD_CORS_ORIGINS: {text!r}: {problem}")
    parts = urlsplit(text)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 (urlsplit drops the brackets)
    if parts.port is not None and parts.port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{parts.port}"
    return f"{scheme}://{host}"


def _origin_problem(text: str) -> str | None:
    if text == "null":
        return "null is the origin of every sandboxed frame and local file, not one site"
    if "*" in text:
        return "no patterns: list each origin (* alone allows any)"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "not an origin: scheme://host[:port]"
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname or "//" not in text:
        return "expected scheme://host[:port] with http or https"
    if parts.path not in ("", "/") or "?" in text or "#" in text:
        return "an origin has no path, query or fragment: scheme://host[:port]"
    if "@" in parts.netloc:
        return "an origin has no user name"
    if not parts.hostname.isascii():
        return "write the host as browsers send it (xn--... for a non-ASCII name)"
    if not (_HOST_NAME.fullmatch(parts.hostname) or _is_ip_literal(parts.hostname)):
        return "not a host name (letters, digits, dots and hyphens) nor an IP address"
    if parts.port == 0:
        return "port 0 is no port a page is served from"
    return None


# A DNS name as browsers write it in an Origin: labels of letters, digits and hyphens.
_HOST_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?", re.I)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Environment(EnvSettingsSource):
    """The variables of one mapping (``os.environ`` or a test's dict), and nothing else."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _checked(build: Callable[[], Settings]) -> Settings:
    """``build()``, its validation errors as one SettingsError: one line per bad value."""
    try:
        return build()
    except ValidationError as exc:
        raise SettingsError("\n".join(_explain(e) for e in exc.errors())) from None


_KINDS = {
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "path_type": "a path",
    "string_type": "text",
}


def _explain(error: ErrorDetails) -> str:
    ctx = error.get("ctx") or {}
    if not error["loc"]:  # a check across fields: its message names the variables
        return str(ctx.get("error", error["msg"]))
    name = str(error["loc"][0])
    variable = name if name.startswith(PREFIX) else PREFIX + name.upper()
    value = error["input"]
    if error["type"] == "value_error" and isinstance(ctx.get("error"), SettingsError):
        return str(ctx["error"])  # a validator's own message, naming its variable
    if error["type"] == "literal_error":
        choices = str(ctx.get("expected", "")).replace("'", "")
        return f"{variable} must be {choices}, not {value!r}"
    if error["type"] == "greater_than_equal":
        return f"{variable} must be at least {ctx.get('ge')}, not {value!r}"
    if error["type"] == "less_than_equal":
        return f"{variable} must be at most {ctx.get('le')}, not {value!r}"
    if error["type"] in _KINDS:
        return f"{variable} must be {_KINDS[error['type']]}, not {value!r}"
    return f"{variable}: {error['msg']} (not {value!r})"
