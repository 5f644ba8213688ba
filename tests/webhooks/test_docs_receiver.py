"""The Python receiver of docs/integrations.md, run exactly as written there, verifies and
prints a real delivery (and a forged one is answered 400)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import httpx
import pytest

from infra.clock import OffsetClock
from infra.db import Database
from schema.context import Services
from tests.factories import Tenant, approve_sale, dispatch
from tests.ports import free_port
from tests.support import GQL, eventually
from tests.webhooks.receiver import Receiver
from tests.webhooks.scenarios import deliveries, register
from webhooks.models import DeliveryStatus
from webhooks.worker import DeliveryWorker

pytestmark = pytest.mark.slow

DOC = Path(__file__).parents[2] / "docs" / "integrations.md"


def python_receiver() -> str:
    [code] = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    return str(code)


async def test_the_documented_python_receiver_verifies_a_delivery(
    gql: GQL, db: Database, clock: OffsetClock, services: Services, tenant: Tenant,
    worker: DeliveryWorker, tmp_path: Path,
) -> None:  # fmt: skip
    script = tmp_path / "receiver.py"
    script.write_text(python_receiver())
    port = free_port()
    endpoint = Receiver(address=f"127.0.0.1:{port}")
    _, secret = await register(gql, tenant, endpoint, types=["sale_claim.approved"])
    env = {**os.environ, "WEBHOOK_SECRET": secret, "PORT": str(port)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient() as client:

            async def listening() -> bool:
                try:
                    forged = await client.post(
                        f"http://127.0.0.1:{port}/", content=b"{}",
                        headers={"webhook-id": "x", "webhook-timestamp": "1",
                                 "webhook-signature": "v1,AAAA"},
                    )  # fmt: skip
                except httpx.TransportError:
                    return False
                return forged.status_code == 400

            await eventually(listening, within=20)
        sale = await approve_sale(db, clock, tenant)
        await dispatch(services)
        assert await worker.deliver_due() == 1
        [row] = await deliveries(db)
        assert row.status is DeliveryStatus.DELIVERED
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        assert line.startswith("sale_claim.approved ")
        assert str(sale.payload["claim_id"]) in line
    finally:
        process.kill()
        await process.wait()
