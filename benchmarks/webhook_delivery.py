"""Webhook deliveries per second from one delivery worker (the one `channelboard dispatch`
runs) to a receiver on loopback.

    .venv/bin/python -m benchmarks.webhook_delivery [--deliveries 5000] [--endpoints 1]
        [--concurrency 64] [--database-url URL_OF_AN_EMPTY_DATABASE]

Records `--deliveries` SaleApproved events in the outbox, turns them into delivery rows with
the outbox handler (timed: rows made per second), then lets one `DeliveryWorker` send them
all (timed: deliveries per second, and the worker process's CPU per delivery). Each request
is signed, sent over HTTP/1.1 keep-alive, its attempt written to the delivery log and its
row marked DELIVERED, exactly as in production. The receiver is a process of its own (a
minimal asyncio HTTP server answering 200 at once) that checks every 10th signature with the
`standardwebhooks` library, as an integrator would (with its endpoint's secret), and
reports any that fail. Private targets are allowed (loopback), so no DNS lookups are made.
Prints figures; not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.ports import free_port

VERIFY_EVERY = 10


# ------------------------------------------------------------------------ the receiver


async def receive(port: int, secrets: list[str]) -> None:
    """HTTP/1.1 keep-alive, 200 for every POST; every 10th body's signature verified with
    the secret of its endpoint (the path /hook/N is endpoint N's)."""
    from standardwebhooks import Webhook, WebhookVerificationError  # noqa: PLC0415

    verifiers = [Webhook(secret) for secret in secrets]
    counts = {"received": 0, "verified": 0, "failed": 0}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                endpoint = int(lines[0].split(" ")[1].rsplit("/", 1)[1])
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                counts["received"] += 1
                if counts["received"] % VERIFY_EVERY == 0:
                    try:
                        verifiers[endpoint].verify(body, headers)
                        counts["verified"] += 1
                    except WebhookVerificationError:
                        counts["failed"] += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        # Until stdin closes (the benchmark ends): then the counts.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(f"{counts['received']} {counts['verified']} {counts['failed']}", flush=True)


# ------------------------------------------------------------------------ the sender


async def run(args: argparse.Namespace, url: str) -> None:

    from sqlalchemy import func  # noqa: PLC0415
    from sqlmodel import select  # noqa: PLC0415

    from api import migrations  # noqa: PLC0415
    from api.auth import principal_for  # noqa: PLC0415
    from deal_registration.events import Line, SaleApproved  # noqa: PLC0415
    from infra.clock import SystemClock  # noqa: PLC0415
    from infra.db import Database  # noqa: PLC0415
    from infra.outbox import OutboxEvent, record_event  # noqa: PLC0415
    from partners import service as partners_service  # noqa: PLC0415
    from partners.roles import Role  # noqa: PLC0415
    from webhooks import endpoints  # noqa: PLC0415
    from webhooks.deliveries import create_for_events  # noqa: PLC0415
    from webhooks.models import DeliveryStatus, WebhookDelivery  # noqa: PLC0415
    from webhooks.targets import TargetPolicy  # noqa: PLC0415
    from webhooks.worker import DeliveryWorker  # noqa: PLC0415

    await migrations.upgrade(url)
    db = Database(url)
    clock = SystemClock()
    policy = TargetPolicy(allow_private=True)
    port = free_port()

    async with db.transaction() as session:
        vendor = await partners_service.create_vendor(session, clock, name="Bench", slug="bench")
        partner = await partners_service.create_partner(
            session, clock, vendor_id=vendor.id, name="Bench partner", region="EMEA"
        )
        admin = await partners_service.create_user(
            session, clock, vendor_id=vendor.id, email="admin@bench.example",
            role=Role.VENDOR_ADMIN, display_name="Admin",
        )  # fmt: skip
        principal = principal_for(admin)
        secrets = [
            (
                await endpoints.create_endpoint(
                    session,
                    principal,
                    clock,
                    policy=policy,
                    url=f"http://127.0.0.1:{port}/hook/{i}",
                    event_types=["sale_claim.approved"],
                )  # fmt: skip
            ).secret
            for i in range(args.endpoints)
        ]

    receiver = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.webhook_delivery", "--receiver", str(port),
        "--secrets", ",".join(secrets), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert receiver.stdout is not None
    assert receiver.stdin is not None
    assert (await receiver.stdout.readline()).strip() == b"ready"

    events_wanted = args.deliveries // args.endpoints
    events: list[OutboxEvent] = []
    async with db.transaction() as session:
        for _ in range(events_wanted):
            sale = SaleApproved(
                claim_id=uuid.uuid4(), partner_id=partner.id, rep_user_id=None, region="EMEA",
                currency="USD", amount_minor=129_900,
                lines=[Line(sku="NW-ROUTER-X1", units=1, amount_minor=129_900)],
                sold_at=clock.now(), approved_at=clock.now(),
            )  # fmt: skip
            events.append(
                await record_event(
                    session,
                    clock,
                    vendor_id=vendor.id,
                    type=sale.type,
                    aggregate_id=sale.claim_id,
                    payload=sale.to_payload(),
                )  # fmt: skip
            )

    began = time.perf_counter()
    made = 0
    for start in range(0, len(events), 500):  # the dispatcher's page size
        made += await create_for_events(db, clock, events[start : start + 500])
    fan_out = time.perf_counter() - began

    worker = DeliveryWorker(db, clock, policy=policy, concurrency=args.concurrency)
    began, cpu_began = time.perf_counter(), time.process_time()
    sent = 0
    while True:
        done = await worker.deliver_due()
        if not done:
            break
        sent += done
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    await worker.close()

    async with db.session() as session:
        delivered = await session.scalar(
            select(func.count()).where(WebhookDelivery.status == DeliveryStatus.DELIVERED)
        )
    receiver.stdin.close()
    received, verified, failed = (await receiver.stdout.readline()).split()
    await receiver.wait()
    await db.dispose()

    print(f"database: {url.split('://')[0]}; endpoints: {args.endpoints}; "
          f"concurrency: {args.concurrency}; batch: {worker.batch_size}")  # fmt: skip
    print(f"fan-out (outbox handler): {made} delivery rows in {fan_out:.2f} s "
          f"= {made / fan_out:,.0f} rows/s")  # fmt: skip
    print(f"delivery: {sent} deliveries in {elapsed:.2f} s = {sent / elapsed:,.0f} deliveries/s; "
          f"worker CPU {cpu / max(sent, 1) * 1000:.2f} ms per delivery")  # fmt: skip
    print(
        f"rows DELIVERED: {delivered}; receiver got {int(received)}, verified "
        f"{int(verified)} of every {VERIFY_EVERY}th, {int(failed)} failed verification"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--endpoints", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--receiver", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--secrets", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver is not None:
        asyncio.run(receive(args.receiver, args.secrets.split(",")))
        return
    os.environ.setdefault("CHANNELBOARD_LOG_LEVEL", "warning")
    if args.database_url:
        asyncio.run(run(args, args.database_url))
        return
    with tempfile.TemporaryDirectory(prefix="cbbench-") as tmp:
        asyncio.run(run(args, f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"))


if __name__ == "__main__":
    main()
