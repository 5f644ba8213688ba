"""The delivery worker: sends due deliveries, records each attempt, retries with backoff,
and disables an endpoint that keeps failing.

It runs beside the outbox dispatcher (in ``channelboard dispatch``, or in each API process
with ``CHANNELBOARD_DISPATCH=inline``). A round claims up to ``batch_size`` due deliveries
of active endpoints with a lease (a conditional UPDATE, so two workers never take the same
row), sends them concurrently over one HTTP client, and writes every result in one
transaction. A worker that dies mid-round loses nothing: its rows stay PENDING, and
another worker (or itself, restarted) takes them once the lease expires; a receiver may
then see a message twice, with the same ``webhook-id`` (at least once).

Retries: after the n-th failed attempt the next waits ``SCHEDULE[n-1]`` (5 s, 5 min,
30 min, 2 h, 5 h, 10 h, 10 h: about 28 hours in all), each with +-20 % jitter so that
the deliveries of an outage do not return in lockstep; after the last, the delivery is
FAILED. When a delivery gives up and its endpoint has not had a success for
``DISABLE_AFTER``, the endpoint is disabled (FAILING), with an audit entry and a
``WebhookEndpointDisabled`` event for the vendor's admins.

Requests: POST, the Standard Webhooks headers, no redirects followed (a 3xx is a failure),
no proxies from the environment, no cookies kept, a timeout, at most ``RESPONSE_BYTES``
of the answer read and kept. The URL is checked again before each request (``targets``).
Errors are stored as a class and a fixed message, never the driver's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import logging
import random
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, insert, or_, update
from sqlmodel import col, select

from infra import audit
from infra.clock import Clock
from infra.db import Database
from infra.ids import new_id
from infra.outbox import record_event
from partners.audit_log import AuditEntity
from webhooks import signing, targets
from webhooks.endpoints import signing_secrets
from webhooks.events import WebhookEndpointDisabled
from webhooks.models import (
    DeliveryStatus,
    DisabledReason,
    EndpointStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

log = logging.getLogger(__name__)

SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.2
DISABLE_AFTER = timedelta(hours=24)
RESPONSE_BYTES = 1024
USER_AGENT = "channelboard-webhooks/1"
LANE = 8  # connections per HTTP client (see DeliveryWorker._lanes)

# error class -> the message the delivery log shows
MESSAGES = {
    "TIMEOUT": "The endpoint did not answer in time.",
    "CONNECT_ERROR": "Could not connect to the endpoint.",
    "TLS_ERROR": "The TLS handshake with the endpoint failed.",
    "NETWORK_ERROR": "The connection failed while sending or receiving.",
    "HTTP_STATUS": "The endpoint answered with a status other than 2xx.",
    "REDIRECT": "The endpoint answered with a redirect; redirects are not followed.",
    "TARGET_NOT_ALLOWED": "The URL now resolves to an internal address; not sent.",
    "TARGET_UNRESOLVABLE": "The endpoint's host name did not resolve.",
    "INVALID_URL": "The endpoint's URL is not valid.",
    "SEND_FAILED": "The request could not be made (an error on our side, logged); retried.",
}


def _caused_by_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def next_wait(failed_attempts: int) -> timedelta | None:
    """The wait after the ``failed_attempts``-th failure, jittered; None: give up."""
    if failed_attempts >= MAX_ATTEMPTS:
        return None
    base = SCHEDULE[failed_attempts - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


@dataclass
class Outcome:
    delivery: WebhookDelivery
    endpoint: WebhookEndpoint
    attempted_at: datetime
    url: str
    request_headers: dict[str, str]
    status: int | None = None
    response_body: str = ""
    latency_ms: int = 0
    error_class: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error_class is None


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        policy: targets.TargetPolicy,
        timeout: float = 10.0,
        concurrency: int = 64,
        batch_size: int = 256,
        lease: timedelta | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.policy = policy
        self.timeout = timeout
        self.concurrency = concurrency
        self.batch_size = batch_size
        # Longer than a round can take: its requests run at most `timeout` each, in
        # batch_size / concurrency waves, plus the writes. (Real time, like the outbox's
        # lease: it is about processes.)
        waves = -(-batch_size // concurrency)
        self.lease = lease or timedelta(seconds=timeout * waves + 10)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._clients: list[httpx.AsyncClient] = []

    # -------------------------------------------------------------------- the loop

    def wake(self) -> None:
        self._wake.set()

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Hold delivering (by this worker) while the block runs, e.g. while a test wipes
        the tables, or drives a worker of its own."""
        async with self._lock:
            yield

    def _lanes(self) -> list[httpx.AsyncClient]:
        """HTTP clients of at most LANE connections each: httpx's pool looks at every one
        of its connections (a poll() each) whenever a request starts or ends, so one pool
        of 64 costs twice the CPU per request of eight pools of 8."""
        if not self._clients:
            for _ in range(-(-self.concurrency // LANE)):
                no_cookies = http.cookiejar.CookieJar(
                    http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
                )
                self._clients.append(
                    httpx.AsyncClient(
                        follow_redirects=False,
                        trust_env=False,  # no proxies from the environment
                        cookies=no_cookies,  # nothing an endpoint sets is ever sent back
                        timeout=httpx.Timeout(self.timeout),
                        limits=httpx.Limits(max_connections=LANE, max_keepalive_connections=LANE),
                    )
                )
        return self._clients

    async def close(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()

    async def run(self, poll_interval: float = 1.0) -> None:
        """Deliver forever: at once when woken (new deliveries), and on a poll for retries
        that fall due and for rows another process made or a dead worker left."""
        try:
            while True:
                self._wake.clear()
                try:
                    sent = await self.deliver_due()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhook delivery round failed; retrying")
                    sent = 0
                if sent >= self.batch_size:
                    continue  # more are due
                timeout = poll_interval
                with contextlib.suppress(Exception):
                    due = await self._next_due()
                    if due is not None:
                        until = (due - self.clock.now()).total_seconds()
                        timeout = min(timeout, max(until, 0.05))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
        finally:
            await self.close()

    async def _next_due(self) -> datetime | None:
        """When the next delivery this worker could claim falls due (not one of a disabled
        endpoint's, nor one another worker holds: those would wake it for nothing)."""
        wall = datetime.now(UTC)
        async with self.db.session() as session:
            found = await session.scalar(
                select(func.min(WebhookDelivery.next_attempt_at))
                .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookEndpoint.status == EndpointStatus.ACTIVE,
                    or_(
                        col(WebhookDelivery.leased_until).is_(None),
                        col(WebhookDelivery.leased_until) < wall,
                    ),
                )
            )
            return found if isinstance(found, datetime) else None

    # -------------------------------------------------------------------- a round

    async def deliver_due(self) -> int:
        """One round: claim, send, record. Returns how many deliveries it attempted."""
        async with self._lock:
            return await self._round()

    async def _round(self) -> int:
        token, rows = await self._claim()
        if not rows:
            return 0
        checked: dict[str, asyncio.Future[targets.Target]] = {}
        lanes = self._lanes()
        gates = [asyncio.Semaphore(LANE) for _ in lanes]

        async def one(i: int, delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> Outcome:
            lane = i % len(lanes)
            async with gates[lane]:
                if endpoint.url not in checked:  # once per URL and round
                    checked[endpoint.url] = asyncio.ensure_future(
                        targets.check(endpoint.url, self.policy)
                    )
                try:
                    return await self._send(lanes[lane], delivery, endpoint, checked[endpoint.url])
                except Exception:
                    # Anything _send does not expect (an endpoint's corrupt stored secret, a
                    # URL the HTTP client cannot send) is this delivery's failure, retried
                    # with backoff: raised, it lost the whole round's outcomes, and the next
                    # round (every vendor's due deliveries) failed again on the same row.
                    log.exception("webhook delivery %s could not be sent", delivery.id)
                    outcome = Outcome(delivery, endpoint, self.clock.now(), endpoint.url, {})
                    outcome.error_class = "SEND_FAILED"
                    return outcome

        outcomes = await asyncio.gather(*(one(i, d, e) for i, (d, e) in enumerate(rows)))
        await self._record(token, outcomes)
        return len(outcomes)

    async def _claim(self) -> tuple[uuid.UUID, list[tuple[WebhookDelivery, WebhookEndpoint]]]:
        now = self.clock.now()
        wall = datetime.now(UTC)  # leases are about processes: real time (like the outbox's)
        token = uuid.uuid4()
        free = or_(
            col(WebhookDelivery.leased_until).is_(None), col(WebhookDelivery.leased_until) < wall
        )
        due = (
            select(WebhookDelivery.id)
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                col(WebhookDelivery.next_attempt_at) <= now,
                WebhookEndpoint.status == EndpointStatus.ACTIVE,
                free,
            )
            .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id))
            .limit(self.batch_size)
        )
        # A read first: an idle worker polls every second, and takes no write lock for it.
        async with self.db.session() as session:
            if (await session.exec(due.limit(1))).first() is None:
                return token, []
        async with self.db.transaction() as session:
            result = await session.execute(
                update(WebhookDelivery)
                .where(
                    col(WebhookDelivery.id).in_(due.scalar_subquery()),
                    col(WebhookDelivery.status) == DeliveryStatus.PENDING,
                    free,
                )
                .values(lease_token=token, leased_until=wall + self.lease)
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return token, []
            found = await session.exec(
                select(WebhookDelivery, WebhookEndpoint)
                .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
                .where(WebhookDelivery.lease_token == token)
                .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id))
            )
            return token, [(d, e) for d, e in found]

    async def _send(
        self,
        client: httpx.AsyncClient,
        delivery: WebhookDelivery,
        endpoint: WebhookEndpoint,
        checking: asyncio.Future[targets.Target],
    ) -> Outcome:
        attempted_at = self.clock.now()
        message_id = str(delivery.message_id)
        wall = datetime.now(UTC)  # receivers compare the timestamp with their own clock
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **signing.headers(
                signing_secrets(endpoint, attempted_at), message_id, wall, delivery.body
            ),
        }
        outcome = Outcome(delivery, endpoint, attempted_at, endpoint.url, headers)
        try:
            target = await checking
        except targets.TargetRefused as refused:
            outcome.error_class = refused.code.value
            return outcome
        send_headers = dict(headers)
        extensions: dict[str, Any] = {}
        if target.host_header:
            send_headers["host"] = target.host_header
        if target.sni:
            extensions["sni_hostname"] = target.sni
        started = time.perf_counter()
        try:
            # One deadline for the whole exchange (httpx's applies per read: an endpoint
            # trickling bytes would hold a slot for ever).
            async with asyncio.timeout(self.timeout), client.stream(
                "POST", target.pinned, content=delivery.body.encode(), headers=send_headers,
                extensions=extensions,
            ) as response:  # fmt: skip
                outcome.status = response.status_code
                received = bytearray()
                async for chunk in response.aiter_bytes():
                    received += chunk
                    if len(received) >= RESPONSE_BYTES:
                        break
                outcome.response_body = received[:RESPONSE_BYTES].decode("utf-8", "replace")
        except (httpx.TimeoutException, TimeoutError):
            outcome.error_class = "TIMEOUT"
        except httpx.ConnectError as exc:
            outcome.error_class = "TLS_ERROR" if _caused_by_tls(exc) else "CONNECT_ERROR"
        except httpx.TransportError:
            outcome.error_class = "NETWORK_ERROR"
        outcome.latency_ms = round((time.perf_counter() - started) * 1000)
        if outcome.status is not None and outcome.error_class is None:
            if 300 <= outcome.status < 400:
                outcome.error_class = "REDIRECT"
            elif not 200 <= outcome.status < 300:
                outcome.error_class = "HTTP_STATUS"
        return outcome

    # -------------------------------------------------------------------- results

    async def _record(self, token: uuid.UUID, outcomes: Sequence[Outcome]) -> None:
        now = self.clock.now()
        attempts = []
        for o in outcomes:
            attempts.append({
                "id": new_id(), "vendor_id": o.delivery.vendor_id, "delivery_id": o.delivery.id,
                "endpoint_id": o.endpoint.id, "number": o.delivery.attempts + 1,
                "attempted_at": o.attempted_at, "url": o.url, "request_headers": o.request_headers,
                "response_status": o.status, "response_body": o.response_body,
                "latency_ms": o.latency_ms, "succeeded": o.succeeded,
                "error_class": o.error_class,
                "error": MESSAGES.get(o.error_class) if o.error_class else None,
            })  # fmt: skip
        delivered = [o.delivery.id for o in outcomes if o.succeeded]
        retries: dict[datetime, list[uuid.UUID]] = {}
        given_up: list[Outcome] = []
        for o in outcomes:
            if o.succeeded:
                continue
            wait = next_wait(o.delivery.attempts + 1)
            if wait is None:
                given_up.append(o)
            else:
                retries.setdefault(now + wait, []).append(o.delivery.id)
        ok_endpoints = {o.endpoint.id for o in outcomes if o.succeeded}
        failing_endpoints = {o.endpoint.id for o in outcomes if not o.succeeded} - ok_endpoints
        mine = col(WebhookDelivery.lease_token) == token
        released = {"lease_token": None, "leased_until": None}
        async with self.db.transaction() as session:
            await session.execute(insert(WebhookAttempt), attempts)
            if delivered:
                await session.execute(
                    update(WebhookDelivery)
                    .where(col(WebhookDelivery.id).in_(delivered), mine)
                    .values(
                        status=DeliveryStatus.DELIVERED,
                        delivered_at=now,
                        next_attempt_at=None,
                        attempts=WebhookDelivery.attempts + 1,
                        **released,
                    )  # fmt: skip
                )
            for when, ids in retries.items():
                await session.execute(
                    update(WebhookDelivery)
                    .where(col(WebhookDelivery.id).in_(ids), mine)
                    .values(next_attempt_at=when, attempts=WebhookDelivery.attempts + 1, **released)
                )
            if given_up:
                await session.execute(
                    update(WebhookDelivery)
                    .where(col(WebhookDelivery.id).in_([o.delivery.id for o in given_up]), mine)
                    .values(
                        status=DeliveryStatus.FAILED,
                        next_attempt_at=None,
                        attempts=WebhookDelivery.attempts + 1,
                        **released,
                    )  # fmt: skip
                )
            if ok_endpoints:
                await session.execute(
                    update(WebhookEndpoint)
                    .where(
                        col(WebhookEndpoint.id).in_(ok_endpoints),
                        col(WebhookEndpoint.failing_since).is_not(None),
                    )
                    .values(failing_since=None)
                )
            if failing_endpoints:
                await session.execute(
                    update(WebhookEndpoint)
                    .where(
                        col(WebhookEndpoint.id).in_(failing_endpoints),
                        col(WebhookEndpoint.failing_since).is_(None),
                    )
                    .values(failing_since=now)
                )
            for endpoint_id in dict.fromkeys(o.endpoint.id for o in given_up):
                last = next(o for o in reversed(given_up) if o.endpoint.id == endpoint_id)
                await self._maybe_disable(session, endpoint_id, now, last.error_class)

    async def _maybe_disable(
        self, session: Any, endpoint_id: uuid.UUID, now: datetime, error_class: str | None
    ) -> None:
        """A delivery gave up: disable its endpoint if nothing succeeded there for
        DISABLE_AFTER (a conditional update: once, whatever the number of deliveries)."""
        endpoint = await session.get(WebhookEndpoint, endpoint_id, populate_existing=True)
        if endpoint is None or endpoint.status is not EndpointStatus.ACTIVE:
            return
        since = endpoint.failing_since
        if since is None or now - since < DISABLE_AFTER:
            return
        result = await session.execute(
            update(WebhookEndpoint)
            .where(
                col(WebhookEndpoint.id) == endpoint_id,
                col(WebhookEndpoint.status) == EndpointStatus.ACTIVE,
            )
            .values(
                status=EndpointStatus.DISABLED,
                disabled_reason=DisabledReason.FAILING,
                disabled_at=now,
                updated_at=now,
            )  # fmt: skip
        )
        if result.rowcount != 1:
            return
        await audit.record(
            session, vendor_id=endpoint.vendor_id, actor="system:webhooks",
            action="webhook_endpoint.disabled", entity_type=AuditEntity.WEBHOOK_ENDPOINT,
            entity_id=str(endpoint_id), before={"status": EndpointStatus.ACTIVE},
            after={"status": EndpointStatus.DISABLED, "disabled_reason": DisabledReason.FAILING,
                   "failing_since": since, "last_error_class": error_class},
            reason="Every delivery failed for more than 24 hours.", at=now,
        )  # fmt: skip
        disabled = WebhookEndpointDisabled(
            endpoint_id=endpoint_id, url=endpoint.url, failing_since=since, disabled_at=now,
            last_error_class=error_class,
        )  # fmt: skip
        await record_event(
            session, self.clock, vendor_id=endpoint.vendor_id, type=disabled.type,
            aggregate_id=endpoint_id, payload=disabled.to_payload(),
        )  # fmt: skip
        log.warning("webhook endpoint %s disabled after persistent failure", endpoint_id)
