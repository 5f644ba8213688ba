"""Settings from the environment, and what production mode switches off."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api.app import create_app
from api.settings import DEVELOPMENT_SECRET, Settings, SettingsError
from infra.clock import OffsetClock
from infra.db import Waits
from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL, error_codes

STRONG_SECRET = "s" * 48


def test_defaults_work_on_a_laptop() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite+aiosqlite:///var/channelboard.db"
    assert settings.redis_url is None  # embedded Redis
    assert settings.embedded_database
    assert settings.jwt.secret == DEVELOPMENT_SECRET


def test_document_and_websocket_limits_come_from_the_environment() -> None:
    limits = Settings.from_env(
        {
            "CHANNELBOARD_MAX_SELECTIONS": "300",
            "CHANNELBOARD_MAX_REPEATED_FIELDS": "4",
            "CHANNELBOARD_MAX_INTROSPECTION_DEPTH": "16",
            "CHANNELBOARD_WS_MAX_MESSAGE_BYTES": "65536",
            "CHANNELBOARD_WS_MAX_CONNECTIONS_PER_PRINCIPAL": "3",
        }
    ).limits
    assert (limits.max_selections, limits.max_repeated_fields) == (300, 4)
    assert limits.max_introspection_depth == 16
    assert (limits.ws_max_message_bytes, limits.ws_max_connections_per_principal) == (65536, 3)


def test_the_embedded_default_is_a_single_redis_server() -> None:
    settings = Settings.from_env({})
    assert (settings.redis_url, settings.redis_cluster) == (None, False)
    cluster = Settings.from_env(
        {"CHANNELBOARD_REDIS_URL": "redis://10.0.0.5:7000/0", "CHANNELBOARD_REDIS_CLUSTER": "1"}
    )
    assert cluster.redis_cluster


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(SettingsError, match="development JWT secret"):
        Settings.from_env({"CHANNELBOARD_ENV": "production"})
    with pytest.raises(SettingsError, match="at least 32"):
        Settings.from_env({"CHANNELBOARD_ENV": "production", "CHANNELBOARD_JWT_SECRET": "short"})
    ok = Settings.from_env(
        {"CHANNELBOARD_ENV": "production", "CHANNELBOARD_JWT_SECRET": STRONG_SECRET}
    )
    assert ok.production


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHANNELBOARD_ENV": "staging"}, "CHANNELBOARD_ENV"),
        ({"CHANNELBOARD_JWT_ALGORITHM": "HS512"}, "HS256 or RS256"),
        ({"CHANNELBOARD_JWT_ALGORITHM": "RS256"}, "PUBLIC_KEY"),
        ({"CHANNELBOARD_MAX_QUERY_DEPTH": "deep"}, "whole number"),
        ({"CHANNELBOARD_REDIS_CLUSTER": "true"}, "needs CHANNELBOARD_REDIS_URL"),
        ({"CHANNELBOARD_REDIS_NAMESPACE": "cb{1}"}, "may not contain"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MAX_TOKENS", "abc", "CHANNELBOARD_MAX_TOKENS must be a whole number, not 'abc'"),
        ("JWT_LEEWAY_SECONDS", "1.5", "CHANNELBOARD_JWT_LEEWAY_SECONDS must be a whole number"),
        (
            "WS_INIT_TIMEOUT_SECONDS",
            "soon",
            "CHANNELBOARD_WS_INIT_TIMEOUT_SECONDS must be a number",
        ),
        (
            "OUTBOX_BACKOFF_CAP_SECONDS",
            "0",
            "CHANNELBOARD_OUTBOX_BACKOFF_CAP_SECONDS must be at least 1",
        ),
        ("DISPATCH", "worker", "CHANNELBOARD_DISPATCH must be inline or external, not 'worker'"),
        ("STORAGE", "ftp", "CHANNELBOARD_STORAGE must be local or s3, not 'ftp'"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({f"CHANNELBOARD_{variable}": value})
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_each_bad_value_is_one_line() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(
            {
                "CHANNELBOARD_MAX_TOKENS": "abc",
                "CHANNELBOARD_ENV": "staging",
                "CHANNELBOARD_MAX_ALIASES": "many",
            }
        )
    lines = str(refused.value).splitlines()
    assert len(lines) == 3
    assert {line.split()[0] for line in lines} == {
        "CHANNELBOARD_MAX_TOKENS",
        "CHANNELBOARD_ENV",
        "CHANNELBOARD_MAX_ALIASES",
    }


def test_cross_origin_access_is_off_unless_origins_are_listed() -> None:
    assert not Settings.from_env({}).cors.enabled
    cors = Settings.from_env(
        {"CHANNELBOARD_CORS_ORIGINS": " https://Portal.Example.com:443/, http://127.0.0.1:5173,"}
    ).cors
    # As browsers send Origin: lower case, no default port, no trailing slash.
    assert cors.origins == ("https://portal.example.com", "http://127.0.0.1:5173")
    assert not cors.allow_credentials
    assert Settings.from_env({"CHANNELBOARD_CORS_ORIGINS": "*"}).cors.origins == ("*",)
    listed = Settings.from_env(
        {
            "CHANNELBOARD_CORS_ORIGINS": "https://a.example",
            "CHANNELBOARD_CORS_ALLOW_CREDENTIALS": "1",
        }
    )
    assert listed.cors.allow_credentials
    assert listed.with_overrides(cors_origins="https://b.example").cors.origins == (
        "https://b.example",
    )


@pytest.mark.parametrize(
    ("origins", "message"),
    [
        ("https://portal.example.com/embed", "no path"),
        ("https://portal.example.com?x=1", "no path, query"),
        ("portal.example.com", "scheme://host[:port]"),
        ("ftp://portal.example.com", "http or https"),
        ("https://user@portal.example.com", "no user name"),
        ("https://portal.example.com:70000", "not an origin"),
        ("https://*.example.com", "no patterns"),
        ("null", "sandboxed"),
        ("https://bücher.example", "xn--"),
        ("*, https://portal.example.com", "* (any origin) goes alone"),
        ("https://portal.example.com b", "not a host name"),
        ("https://portal.example.com;", "not a host name"),
        ("https://%70ortal.example.com", "not a host name"),
        ("https://-portal.example.com", "not a host name"),
        ("https://portal.example.com:0", "port 0"),
    ],
)
def test_a_malformed_origin_is_refused(origins: str, message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"CHANNELBOARD_CORS_ORIGINS": origins})
    assert str(refused.value).startswith("CHANNELBOARD_CORS_ORIGINS: ")
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_credentials_need_listed_origins() -> None:
    with pytest.raises(SettingsError, match="cannot be combined"):
        Settings.from_env(
            {"CHANNELBOARD_CORS_ORIGINS": "*", "CHANNELBOARD_CORS_ALLOW_CREDENTIALS": "true"}
        )
    with pytest.raises(SettingsError, match="needs CHANNELBOARD_CORS_ORIGINS"):
        Settings.from_env({"CHANNELBOARD_CORS_ALLOW_CREDENTIALS": "true"})


def test_values_are_read_only_from_the_mapping_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANNELBOARD_MAX_TOKENS", "7")
    assert Settings.from_env({}).limits.max_tokens == 2000
    assert Settings.from_env().limits.max_tokens == 7
    assert Settings.from_env({"CHANNELBOARD_MAX_TOKENS": ""}).limits.max_tokens == 2000


def test_the_readme_names_every_variable_and_no_other() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    named = set(re.findall(r"`(CHANNELBOARD_[A-Z0-9_]+)", readme)) - {
        "CHANNELBOARD_TEST_DATABASE_URL",
        "CHANNELBOARD_TEST_REDIS_URL",
        "CHANNELBOARD_TEST_REDIS_NAMESPACE",
    }
    assert named == Settings.variables()


def test_the_deployment_guide_names_every_variable_and_no_other() -> None:
    guide = (Path(__file__).parents[2] / "docs" / "deploy.md").read_text()
    named = set(re.findall(r"`(CHANNELBOARD_[A-Z0-9_]+)", guide))
    assert named == Settings.variables()


ROOT = Path(__file__).parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
VARIABLE = re.compile(r"CHANNELBOARD_[A-Z0-9_]+")


def _read_by(folder: str) -> set[str]:
    """The CHANNELBOARD_* variables the test harness or the benchmarks read themselves."""
    return {
        name
        for path in (ROOT / folder).rglob("*.py")
        for name in re.findall(
            r"os\.environ(?:\.get)?[(\[]\s*\"(CHANNELBOARD_\w+)\"", path.read_text()
        )
    }


def test_every_variable_the_docs_name_is_read() -> None:
    known = Settings.variables() | _read_by("tests") | _read_by("benchmarks") | {"CHANNELBOARD_X"}
    unknown = [
        f"{path.name}:{number}: {name}"
        for path in DOCS
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for name in VARIABLE.findall(line)
        if name not in known
    ]
    assert unknown == []


def test_the_test_harness_variables_are_documented() -> None:
    guides = (ROOT / "README.md").read_text() + (ROOT / "docs" / "contributing.md").read_text()
    harness = {name for name in _read_by("tests") if name.startswith("CHANNELBOARD_TEST_")}
    assert len(harness) >= 4
    assert harness - set(VARIABLE.findall(guides)) == set()


def _field(variable: str) -> str:
    for name, field in Settings.model_fields.items():
        if variable in {field.validation_alias, f"CHANNELBOARD_{name.upper()}"}:
            return name
    raise AssertionError(f"no setting {variable}")


def _is_default(variable: str, documented: str) -> bool:
    """Whether setting the variable to the documented value changes nothing."""
    name = _field(variable)
    stated = Settings.from_env({variable: documented})
    return bool(getattr(stated, name) == getattr(Settings.from_env({}), name))


# Defaults the README's table describes in words rather than gives.
DESCRIBED = {"CHANNELBOARD_JWT_SECRET": "a development secret"}


def _table_rows(path: Path) -> list[tuple[str, str]]:
    """(variable, default cell) of each row of a variables table: | `VAR` | default | ..."""
    return re.findall(r"^\| `(CHANNELBOARD_\w+)` \| ([^|]*) \|", path.read_text(), re.M)


def test_the_readme_table_gives_the_real_defaults() -> None:
    rows = _table_rows(ROOT / "README.md")
    assert {variable for variable, _ in rows} == Settings.variables()
    assert _wrong_defaults(rows) == []


def test_the_guides_tables_give_the_real_defaults() -> None:
    """A guide's own table of variables (integrations.md's e-mail settings) states their
    defaults as the README's does: checked alike (a wrong SMTP port passed)."""
    rows = [row for path in DOCS[1:] for row in _table_rows(path)]
    assert len(rows) >= 5
    assert _wrong_defaults(rows) == []


def _wrong_defaults(rows: list[tuple[str, str]]) -> list[str]:
    defaults = Settings.from_env({})
    wrong = []
    for variable, cell in rows:
        cell = cell.strip()
        if DESCRIBED.get(variable) == cell:
            continue
        if cell == "—" or cell.startswith("unset"):  # no value unless set
            if getattr(defaults, _field(variable)):
                wrong.append(
                    f"{variable}: {cell} (default {getattr(defaults, _field(variable))!r})"
                )
            continue
        value = re.fullmatch(r"`([^`]+)`", cell)
        if value is None or not _is_default(variable, value[1]):
            wrong.append(f"{variable}: {cell}")
    return wrong


def test_the_defaults_stated_in_the_guides_are_the_real_ones() -> None:
    stated = [
        (path.name, variable, value)
        for path in DOCS
        for variable, value in re.findall(
            r"`(CHANNELBOARD_\w+)`,? \(?default `?([^`\s),;]+)", path.read_text()
        )
        + re.findall(r"`(CHANNELBOARD_\w+)=([^`]+)` \(the default\)", path.read_text())
    ]
    # "32 KiB (`CHANNELBOARD_MAX_DOCUMENT_BYTES`)", "7 days (`…_RETENTION_HOURS`)"
    for path in DOCS:
        for number, unit, variable in re.findall(
            r"(\d[\d,]*)( KiB| MiB| s| days)? \(`(CHANNELBOARD_\w+)`", path.read_text()
        ):
            value = int(number.replace(",", ""))
            value *= {" KiB": 1 << 10, " MiB": 1 << 20}.get(unit, 1)
            if unit == " days" and variable.endswith("_HOURS"):
                value *= 24
            stated.append((path.name, variable, str(value)))
    assert len(stated) >= 20
    wrong = [
        f"{page}: {variable} default {value}"
        for page, variable, value in stated
        if "<" not in value and not _is_default(variable, value)  # `<var>/attachments`
    ]
    assert wrong == []


def test_overrides_are_checked_like_the_environment() -> None:
    settings = Settings.from_env({})
    with pytest.raises(SettingsError, match="development JWT secret"):
        settings.with_overrides(env="production")
    with pytest.raises(SettingsError, match="CHANNELBOARD_MAX_TOKENS must be a whole number"):
        settings.with_overrides(max_tokens="lots")
    tighter = settings.with_overrides(limits=replace(settings.limits, max_tokens=60))
    assert tighter.limits.max_tokens == 60
    assert tighter.limits.max_aliases == settings.limits.max_aliases


@pytest.fixture
async def production(settings: Settings, clock: OffsetClock) -> AsyncIterator[GQL]:
    prod = settings.with_overrides(
        env="production", jwt=settings.jwt.__class__(secret=STRONG_SECRET)
    )
    app = create_app(prod, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://prod") as client:
            yield GQL(client=client, settings=prod, clock=clock)


async def test_production_turns_off_graphiql_introspection_and_suggestions(
    production: GQL, tenant: Tenant
) -> None:
    page = await production.client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 404
    admin = tenant.user(Role.VENDOR_ADMIN)
    introspection = await production("{ __schema { types { name } } }", as_user=admin)
    assert "errors" in introspection
    typo = await production("{ me { rol } }", as_user=admin)
    assert "Did you mean" not in typo["errors"][0]["message"]
    assert error_codes(typo) == ["GRAPHQL_VALIDATION_FAILED"]
    assert (await production.data("{ me { role } }", as_user=admin)) == {
        "me": {"role": "VENDOR_ADMIN"}
    }


async def test_development_suggests_field_names(gql: GQL, tenant: Tenant) -> None:
    typo = await gql("{ me { rol } }", as_user=tenant.user(Role.VENDOR_ADMIN))
    assert "Did you mean" in typo["errors"][0]["message"]


def _rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public.decode()


def _rs256(key: rsa.RSAPrivateKey, sub: str, kid: str | None = None) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": sub,
        "iss": "https://id.example",
        "aud": "channelboard",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm="RS256", headers=headers)


async def _me_with(settings: Settings, clock: OffsetClock, token: str) -> dict[str, object]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rs") as client:
            response = await client.post(
                "/graphql",
                json={"query": "{ me { role } }"},
                headers={"authorization": f"Bearer {token}"},
            )
            result: dict[str, object] = response.json()
            return result


async def test_rs256_with_a_public_key(
    settings: Settings, clock: OffsetClock, tenant: Tenant, tmp_path: Path
) -> None:
    key, public_pem = _rsa_pair()
    pem_file = tmp_path / "public.pem"
    pem_file.write_text(public_pem)
    rs = Settings.from_env(
        {
            "CHANNELBOARD_DATABASE_URL": settings.database_url,
            "CHANNELBOARD_REDIS_URL": settings.redis_url or "",
            "CHANNELBOARD_REDIS_NAMESPACE": settings.redis_namespace,
            "CHANNELBOARD_JWT_ALGORITHM": "RS256",
            "CHANNELBOARD_JWT_PUBLIC_KEY": str(pem_file),
            "CHANNELBOARD_JWT_ISSUER": "https://id.example",
        }
    )
    user_id = str(tenant.user(Role.FINANCE).id)
    assert await _me_with(rs, clock, _rs256(key, user_id)) == {"data": {"me": {"role": "FINANCE"}}}
    other_key, _ = _rsa_pair()
    refused = await _me_with(rs, clock, _rs256(other_key, user_id))
    assert refused["errors"][0]["extensions"]["reason"] == "BAD_SIGNATURE"  # type: ignore[index]
    # An HS256 token signed with the public key as a secret (algorithm confusion) fails.
    confused = jwt.encode(
        {"sub": user_id, "iss": "https://id.example", "aud": "channelboard", "iat": 0,
         "exp": 2**31},
        STRONG_SECRET,
        algorithm="HS256",
    )  # fmt: skip
    assert "errors" in await _me_with(rs, clock, confused)


async def test_rs256_with_a_jwks_file(
    settings: Settings, clock: OffsetClock, tenant: Tenant, tmp_path: Path
) -> None:
    old, _ = _rsa_pair()
    new, _ = _rsa_pair()
    jwks = {
        "keys": [
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())), "kid": kid,
             "use": "sig", "alg": "RS256"}
            for kid, k in (("old", old), ("new", new))
        ]
    }  # fmt: skip
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks))
    rs = settings.with_overrides(
        jwt=settings.jwt.__class__(
            algorithm="RS256", jwks_file=jwks_file, issuer="https://id.example"
        )
    )
    user_id = str(tenant.user(Role.VENDOR_ADMIN).id)
    for kid, key in (("old", old), ("new", new)):
        assert await _me_with(rs, clock, _rs256(key, user_id, kid)) == {
            "data": {"me": {"role": "VENDOR_ADMIN"}}
        }
    wrong_kid = await _me_with(rs, clock, _rs256(old, user_id, "new"))
    assert wrong_kid["errors"][0]["extensions"]["reason"] == "BAD_SIGNATURE"  # type: ignore[index]


def test_the_database_waits_are_read_and_checked() -> None:
    assert Settings.from_env({}).database_waits == Waits(
        idle_in_transaction_seconds=300.0, sqlite_busy_seconds=30.0
    )
    tuned = Settings.from_env(
        {
            "CHANNELBOARD_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS": "5",
            "CHANNELBOARD_SQLITE_BUSY_TIMEOUT_SECONDS": "0.5",
        }
    )
    assert tuned.database_waits == Waits(idle_in_transaction_seconds=5, sqlite_busy_seconds=0.5)
    off = {"CHANNELBOARD_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS": "0"}
    assert Settings.from_env(off).database_waits.idle_in_transaction_seconds == 0
    with pytest.raises(SettingsError, match="IDLE_IN_TRANSACTION_TIMEOUT_SECONDS"):
        Settings.from_env({"CHANNELBOARD_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS": "-1"})
    with pytest.raises(SettingsError, match="SQLITE_BUSY_TIMEOUT_SECONDS"):
        Settings.from_env({"CHANNELBOARD_SQLITE_BUSY_TIMEOUT_SECONDS": "0"})


def test_the_idempotency_key_retention_is_read_and_checked() -> None:
    """A week by default; at least the 24 hours Stripe-style clients count on; at most a
    year (a value meant in seconds is refused, not kept for decades)."""
    assert Settings.from_env({}).idempotency_key_retention == timedelta(days=7)
    variable = "CHANNELBOARD_IDEMPOTENCY_KEY_RETENTION_HOURS"
    assert Settings.from_env({variable: "24"}).idempotency_key_retention == timedelta(hours=24)
    for value, message in [
        ("23", f"{variable} must be at least 24, not '23'"),
        ("604800", f"{variable} must be at most 8760, not '604800'"),
        ("7d", f"{variable} must be a whole number, not '7d'"),
    ]:
        with pytest.raises(SettingsError) as refused:
            Settings.from_env({variable: value})
        assert str(refused.value) == message
