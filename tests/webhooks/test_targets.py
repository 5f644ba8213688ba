"""Where webhooks may go: absolute http(s) URLs on public addresses only, unless the
installation allows private targets. Refused at registration (coded, nothing changed) and
again before every request, so a name that later resolves inside (DNS rebinding) gets
nothing; the request goes to the address that was checked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import select
from starlette.applications import Starlette

from api.app import create_app
from api.settings import Settings
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from infra.errors import DomainError, DomainErrors
from partners.roles import Role
from schema.context import Services
from tests.factories import Tenant, approve_sale, dispatch
from tests.support import GQL, count_rows
from tests.webhooks.queries import CREATE
from tests.webhooks.receiver import receiving
from tests.webhooks.scenarios import deliveries
from webhooks import endpoints, targets
from webhooks.errors import WebhookErrorCode
from webhooks.models import WebhookAttempt, WebhookEndpoint
from webhooks.targets import TargetPolicy, TargetRefused
from webhooks.worker import DeliveryWorker

STRICT = TargetPolicy(allow_private=False)

INSIDE = [
    "http://127.0.0.1/hook", "http://127.8.9.10:8080/hook", "http://localhost/hook",
    "http://10.0.0.5/hook", "http://172.16.3.4/hook", "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook", "http://[fe80::1]/hook", "http://[fd00::1]/hook",
    "http://0.0.0.0/hook", "http://224.0.0.1/hook", "http://100.64.0.1/hook",
    "http://240.0.0.1/hook", "https://[2002:7f00:1::]/hook", "http://[fec0::1]/hook",
    # Decimal, octal and short forms of 127.0.0.1: the system resolver reads them as it.
    "http://2130706433/hook", "http://0177.0.0.1/hook", "http://0x7f.1/hook",
    "http://127.1/hook", "http://[::127.0.0.1]/hook",
]  # fmt: skip


def resolving_to(*addresses: str) -> targets.Resolver:
    """A DNS answer (the resolver is the installation's; the test plays the DNS)."""

    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


async def unresolvable(host: str, port: int) -> list[str]:
    raise OSError("Name or service not known")


@pytest.mark.parametrize("url", INSIDE)
async def test_inside_addresses_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        await targets.check(url, STRICT)
    assert refused.value.code is WebhookErrorCode.TARGET_NOT_ALLOWED


async def test_a_name_is_refused_if_any_of_its_addresses_is_inside() -> None:
    policy = TargetPolicy(resolver=resolving_to("93.184.216.34", "10.1.2.3"))
    with pytest.raises(TargetRefused) as refused:
        await targets.check("https://hooks.example.com/in", policy)
    assert refused.value.code is WebhookErrorCode.TARGET_NOT_ALLOWED
    with pytest.raises(TargetRefused) as missing:
        await targets.check("https://nowhere.example.com/", TargetPolicy(resolver=unresolvable))
    assert missing.value.code is WebhookErrorCode.TARGET_UNRESOLVABLE


async def test_a_public_name_is_pinned_to_the_address_checked() -> None:
    policy = TargetPolicy(resolver=resolving_to("93.184.216.34"))
    target = await targets.check("https://hooks.example.com:8443/in?x=1", policy)
    assert target.pinned == "https://93.184.216.34:8443/in?x=1"
    assert (target.host_header, target.sni) == ("hooks.example.com:8443", "hooks.example.com")
    v6 = await targets.check(
        "http://hooks.example.com/in", TargetPolicy(resolver=resolving_to("2606:2800:220:1::1"))
    )
    assert (v6.pinned, v6.sni) == ("http://[2606:2800:220:1::1]/in", None)
    allowed = await targets.check("http://127.0.0.1:9/in", TargetPolicy(allow_private=True))
    assert (allowed.pinned, allowed.host_header) == ("http://127.0.0.1:9/in", None)


@pytest.fixture
async def strict_app(settings: Settings, clock: OffsetClock) -> AsyncIterator[Starlette]:
    """The app of an installation that does not allow private targets (the default)."""
    application = create_app(
        settings.with_overrides(webhooks_allow_private_targets=False), clock=clock
    )
    async with application.router.lifespan_context(application):
        yield application


async def test_registration_refuses_inside_targets_over_graphql(
    strict_app: Starlette, gql: GQL, db: Database, tenant: Tenant
) -> None:
    transport = httpx.ASGITransport(app=strict_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        strict = GQL(client=client, settings=gql.settings, clock=gql.clock)
        for url in ("http://127.0.0.1:8000/hook", "http://169.254.169.254/", "http://[::1]/x"):
            payload = (
                await strict.data(
                    CREATE, {"input": {"url": url, "eventTypes": ["partner.enrolled"]}},
                    as_user=tenant.user(Role.VENDOR_ADMIN),
                )
            )["webhookEndpointCreate"]  # fmt: skip
            assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
                ("url", "TARGET_NOT_ALLOWED")
            ]
            assert payload["secret"] is None
    assert await count_rows(db, WebhookEndpoint) == 0
    assert await count_rows(db, AuditEntry) == 0


async def test_a_name_that_now_resolves_inside_gets_nothing(
    db: Database, clock: OffsetClock, services: Services, tenant: Tenant, worker: DeliveryWorker
) -> None:
    admin = tenant.principal(Role.VENDOR_ADMIN)
    async with receiving() as receiver:
        port = receiver.address.rsplit(":", 1)[1]
        async with db.transaction() as session:
            await endpoints.create_endpoint(
                session, admin, clock, policy=TargetPolicy(resolver=resolving_to("93.184.216.34")),
                url=f"http://hooks.example.com:{port}/hook", event_types=["sale_claim.approved"],
            )  # fmt: skip
        await approve_sale(db, clock, tenant)
        await dispatch(services)
        # At delivery the name resolves to loopback (where the receiver listens).
        rebound = DeliveryWorker(
            db, clock, policy=TargetPolicy(resolver=resolving_to("127.0.0.1")), timeout=0.5
        )
        try:
            assert await rebound.deliver_due() == 1
        finally:
            await rebound.close()
        assert receiver.received == []
    [row] = await deliveries(db)
    assert row.attempts == 1
    async with db.session() as session:
        [attempt] = list(await session.exec(select(WebhookAttempt)))
    assert (attempt.error_class, attempt.response_status) == ("TARGET_NOT_ALLOWED", None)
    assert attempt.error == "The URL now resolves to an internal address; not sent."


async def test_the_service_refuses_an_update_to_an_inside_target(
    db: Database, clock: OffsetClock, tenant: Tenant
) -> None:
    admin = tenant.principal(Role.VENDOR_ADMIN)
    public = TargetPolicy(resolver=resolving_to("93.184.216.34"))
    async with db.transaction() as session:
        made = await endpoints.create_endpoint(
            session, admin, clock, policy=public, url="https://hooks.example.com/in",
            event_types=["partner.enrolled"],
        )  # fmt: skip
    with pytest.raises(DomainErrors) as refused:
        async with db.transaction() as session:
            await endpoints.create_endpoint(
                session, admin, clock, policy=STRICT, url="http://10.0.0.1/",
                event_types=["nope"],
            )  # fmt: skip
    assert [(e.code, e.field) for e in refused.value.errors] == [
        (WebhookErrorCode.TARGET_NOT_ALLOWED, "url"),
        (WebhookErrorCode.UNKNOWN_EVENT_TYPE, "event_types.0"),
    ]
    with pytest.raises(DomainError) as inside:
        async with db.transaction() as session:
            await endpoints.update_endpoint(
                session, admin, clock, policy=STRICT, endpoint_id=made.endpoint.id,
                url="http://192.168.0.10/in",
            )  # fmt: skip
    assert inside.value.code is WebhookErrorCode.TARGET_NOT_ALLOWED
    async with db.session() as session:
        row = await session.get(WebhookEndpoint, made.endpoint.id)
    assert row is not None
    assert row.url == "https://hooks.example.com/in"


@pytest.mark.parametrize("tail", ["\x01", "?a=\x7f", "#x"])
async def test_a_url_no_request_can_be_sent_to_is_refused_and_stalls_no_round(
    gql: GQL,
    db: Database,
    clock: OffsetClock,
    services: Services,
    tenant: Tenant,
    worker: DeliveryWorker,
    tail: str,
) -> None:
    """A control character (C0 or DEL) anywhere in the URL: urlsplit keeps it, httpx refuses
    to send to it (InvalidURL, not a transport error). Registered, it made every delivery
    round raise before recording anything, so the vendor's other endpoints got nothing
    either (found probing from outside). Refused at registration (INVALID_CHARACTERS, the
    identifier rule); a row stored before is an INVALID_URL attempt, and the round goes on."""
    async with receiving() as good, receiving() as bad:
        created = (
            await gql.data(
                CREATE, {"input": {"url": bad.url + tail, "eventTypes": ["sale_claim.approved"]}},
                as_user=tenant.user(Role.VENDOR_ADMIN),
            )
        )["webhookEndpointCreate"]  # fmt: skip
        # A control character is an identifier's refused character (infra.text) before it is
        # a URL httpx cannot send to; a fragment is a URL problem.
        code = "INVALID_URL" if tail == "#x" else "INVALID_CHARACTERS"
        assert [(e["field"], e["code"]) for e in created["userErrors"]] == [("url", code)]
        assert await count_rows(db, WebhookEndpoint) == 0

        admin = tenant.principal(Role.VENDOR_ADMIN)
        for receiver in (good, bad):
            async with db.transaction() as session:
                await endpoints.create_endpoint(
                    session, admin, clock, policy=TargetPolicy(allow_private=True),
                    url=receiver.url, event_types=["sale_claim.approved"],
                )  # fmt: skip
        async with db.transaction() as session:  # stored before this check
            [row] = await session.exec(
                select(WebhookEndpoint).where(WebhookEndpoint.url == bad.url)
            )
            row.url = bad.url + tail
        await approve_sale(db, clock, tenant)
        await dispatch(services)
        assert await worker.deliver_due() == 2
        assert len(good.received) == 1
        assert bad.received == []
    async with db.session() as session:
        attempts = list(await session.exec(select(WebhookAttempt)))
    assert sorted(str(a.error_class) for a in attempts) == ["INVALID_URL", "None"]


async def test_an_internationalised_host_is_sent_in_its_idna_form() -> None:
    """A legitimate IDN host (a public one, as production requires): the Host header and
    the SNI carried the Unicode name, which httpx cannot encode (UnicodeEncodeError, raised
    out of the delivery round, every round, so no endpoint of any vendor got anything)."""
    target = await targets.check(
        "https://Hooks.Müller.example:8443/in", TargetPolicy(resolver=resolving_to("93.184.216.34"))
    )
    assert (target.host_header, target.sni) == (
        "hooks.xn--mller-kva.example:8443",
        "hooks.xn--mller-kva.example",
    )
    assert target.pinned == "https://93.184.216.34:8443/in"
    request = httpx.Request("POST", target.pinned, headers={"host": target.host_header or ""})
    assert request.headers["host"] == "hooks.xn--mller-kva.example:8443"
