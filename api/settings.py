"""Configuration from CHANNELBOARD_* environment variables, with working laptop defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

DEVELOPMENT_SECRET = "channelboard-development-secret-do-not-use-in-production"


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


@dataclass(frozen=True)
class Limits:
    max_query_depth: int = 12
    max_aliases: int = 20
    max_tokens: int = 2_000
    max_page_size: int = 100
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
class Settings:
    env: str = "development"
    var_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str | None = None
    redis_namespace: str = "cb"
    jwt: JWTSettings = field(default_factory=JWTSettings)
    limits: Limits = field(default_factory=Limits)
    log_level: str = "info"
    storage: StorageSettings = field(default_factory=StorageSettings)
    # "inline": each API process dispatches outbox events itself (the embedded default).
    # "external": API processes leave that to a `channelboard dispatch` process.
    dispatch: str = "inline"
    # An outbox event whose handler keeps failing is dead-lettered after this many attempts,
    # waiting 1 s, 2 s, 4 s, ... (at most outbox_backoff_cap_seconds) between them.
    outbox_max_attempts: int = 10
    outbox_backoff_cap_seconds: int = 300

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def embedded_database(self) -> bool:
        return self.database_url == default_database_url(self.var_dir)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(f"CHANNELBOARD_{name}")
            return value if value not in (None, "") else default

        var_dir = Path(get("VAR_DIR", "var") or "var")
        jwks = get("JWT_JWKS_FILE")
        public_key = get("JWT_PUBLIC_KEY")
        if (
            public_key
            and not public_key.lstrip().startswith("-----")
            and Path(public_key).is_file()
        ):
            public_key = Path(public_key).read_text()
        jwt = JWTSettings(
            algorithm=get("JWT_ALGORITHM", "HS256") or "HS256",
            secret=get("JWT_SECRET", DEVELOPMENT_SECRET) or DEVELOPMENT_SECRET,
            public_key=public_key,
            jwks_file=Path(jwks) if jwks else None,
            issuer=get("JWT_ISSUER", "channelboard-dev") or "channelboard-dev",
            audience=get("JWT_AUDIENCE", "channelboard") or "channelboard",
            leeway_seconds=_int(get("JWT_LEEWAY_SECONDS", "30"), "JWT_LEEWAY_SECONDS"),
        )
        defaults = Limits()
        limits = Limits(
            max_query_depth=_int(
                get("MAX_QUERY_DEPTH"), "MAX_QUERY_DEPTH", defaults.max_query_depth
            ),
            max_aliases=_int(get("MAX_ALIASES"), "MAX_ALIASES", defaults.max_aliases),
            max_tokens=_int(get("MAX_TOKENS"), "MAX_TOKENS", defaults.max_tokens),
            max_page_size=defaults.max_page_size,
            max_body_bytes=_int(get("MAX_BODY_BYTES"), "MAX_BODY_BYTES", defaults.max_body_bytes),
            max_upload_bytes=_int(
                get("MAX_UPLOAD_BYTES"), "MAX_UPLOAD_BYTES", defaults.max_upload_bytes
            ),
            ws_max_subscriptions=_int(
                get("WS_MAX_SUBSCRIPTIONS"), "WS_MAX_SUBSCRIPTIONS", defaults.ws_max_subscriptions
            ),
            ws_init_timeout_seconds=float(
                get("WS_INIT_TIMEOUT_SECONDS") or defaults.ws_init_timeout_seconds
            ),
            max_document_bytes=_int(
                get("MAX_DOCUMENT_BYTES"), "MAX_DOCUMENT_BYTES", defaults.max_document_bytes
            ),
            max_selections=_int(get("MAX_SELECTIONS"), "MAX_SELECTIONS", defaults.max_selections),
            max_repeated_fields=_int(
                get("MAX_REPEATED_FIELDS"), "MAX_REPEATED_FIELDS", defaults.max_repeated_fields
            ),
            max_introspection_depth=_int(
                get("MAX_INTROSPECTION_DEPTH"),
                "MAX_INTROSPECTION_DEPTH",
                defaults.max_introspection_depth,
            ),
            ws_max_message_bytes=_int(
                get("WS_MAX_MESSAGE_BYTES"), "WS_MAX_MESSAGE_BYTES", defaults.ws_max_message_bytes
            ),
            ws_max_connections_per_principal=_int(
                get("WS_MAX_CONNECTIONS_PER_PRINCIPAL"),
                "WS_MAX_CONNECTIONS_PER_PRINCIPAL",
                defaults.ws_max_connections_per_principal,
            ),
        )
        settings = cls(
            env=(get("ENV", "development") or "development").lower(),
            var_dir=var_dir,
            database_url=get("DATABASE_URL") or default_database_url(var_dir),
            redis_url=get("REDIS_URL"),
            redis_namespace=get("REDIS_NAMESPACE", "cb") or "cb",
            jwt=jwt,
            limits=limits,
            log_level=(get("LOG_LEVEL", "info") or "info").lower(),
            dispatch=(get("DISPATCH", "inline") or "inline").lower(),
            outbox_max_attempts=_int(get("OUTBOX_MAX_ATTEMPTS"), "OUTBOX_MAX_ATTEMPTS", 10),
            outbox_backoff_cap_seconds=_int(
                get("OUTBOX_BACKOFF_CAP_SECONDS"), "OUTBOX_BACKOFF_CAP_SECONDS", 300
            ),
            storage=StorageSettings(
                backend=(get("STORAGE", "local") or "local").lower(),
                local_dir=Path(local_dir) if (local_dir := get("STORAGE_DIR")) else None,
                s3_bucket=get("S3_BUCKET"),
                s3_endpoint_url=get("S3_ENDPOINT_URL"),
                s3_region=get("S3_REGION"),
                s3_prefix=get("S3_PREFIX", "attachments/") or "attachments/",
            ),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.env not in ("development", "test", "production"):
            raise SettingsError("CHANNELBOARD_ENV must be development, test or production")
        if self.dispatch not in ("inline", "external"):
            raise SettingsError("CHANNELBOARD_DISPATCH must be inline or external")
        if self.outbox_max_attempts < 1:
            raise SettingsError("CHANNELBOARD_OUTBOX_MAX_ATTEMPTS must be at least 1")
        if self.outbox_backoff_cap_seconds < 1:
            raise SettingsError("CHANNELBOARD_OUTBOX_BACKOFF_CAP_SECONDS must be at least 1")
        if self.storage.backend not in ("local", "s3"):
            raise SettingsError("CHANNELBOARD_STORAGE must be local or s3")
        if self.storage.backend == "s3" and not self.storage.s3_bucket:
            raise SettingsError("CHANNELBOARD_STORAGE=s3 needs CHANNELBOARD_S3_BUCKET")
        if self.jwt.algorithm not in ("HS256", "RS256"):
            raise SettingsError("CHANNELBOARD_JWT_ALGORITHM must be HS256 or RS256")
        if self.jwt.algorithm == "RS256" and not (self.jwt.public_key or self.jwt.jwks_file):
            raise SettingsError(
                "RS256 needs CHANNELBOARD_JWT_PUBLIC_KEY or CHANNELBOARD_JWT_JWKS_FILE"
            )
        if self.production:
            if self.jwt.algorithm == "HS256" and self.jwt.secret == DEVELOPMENT_SECRET:
                raise SettingsError(
                    "refusing to run in production with the development JWT secret: set "
                    "CHANNELBOARD_JWT_SECRET (HS256) or use RS256 with a public key or JWKS"
                )
            if self.jwt.algorithm == "HS256" and len(self.jwt.secret) < 32:
                raise SettingsError("CHANNELBOARD_JWT_SECRET must be at least 32 characters")

    def with_overrides(self, **changes: object) -> Settings:
        updated = replace(self, **changes)  # type: ignore[arg-type]
        updated.validate()
        return updated


def default_database_url(var_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{var_dir / 'channelboard.db'}"


def _int(value: str | None, name: str, default: int | None = None) -> int:
    if value is None:
        if default is None:
            raise SettingsError(f"CHANNELBOARD_{name} is required")
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise SettingsError(f"CHANNELBOARD_{name} must be a whole number, not {value!r}") from exc
