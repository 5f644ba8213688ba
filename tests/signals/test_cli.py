"""`channelboard signals rebuild` restores facts and snapshots from the source tables."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from sqlmodel import delete, select

from api.settings import Settings
from infra.clock import OffsetClock
from infra.db import Database
from schema.context import Services
from signals.models import SignalFact, SignalSnapshot
from tests.earnings.scenarios import make_program, seed_products, worked_rules
from tests.factories import Tenant, approve_sale
from tests.signals.scenarios import settle

pytestmark = pytest.mark.slow


async def rebuild(settings: Settings, *args: str) -> tuple[int, str]:
    env = {**os.environ, "CHANNELBOARD_DATABASE_URL": settings.database_url,
           "CHANNELBOARD_REDIS_URL": settings.redis_url or "",
           "CHANNELBOARD_REDIS_NAMESPACE": settings.redis_namespace,
           "CHANNELBOARD_ENV": "test"}  # fmt: skip
    channelboard = Path(sys.executable).parent / "channelboard"
    process = await asyncio.create_subprocess_exec(
        str(channelboard), "signals", "rebuild", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await process.communicate()
    return process.returncode or 0, err.decode()


async def test_rebuild_command(
    services: Services, db: Database, clock: OffsetClock, tenant: Tenant, settings: Settings
) -> None:
    await seed_products(db, clock, tenant)
    await make_program(db, clock, tenant, worked_rules(clock.now()))
    await approve_sale(db, clock, tenant, amount=1_000_00, sku="NW-AP-6E")
    await settle(services)
    async with db.session() as session:
        facts = list(await session.exec(select(SignalFact)))
        snapshots = {
            (s.partner_id, s.day): s.values for s in await session.exec(select(SignalSnapshot))
        }
    async with db.transaction() as session:
        await session.exec(delete(SignalFact))
        await session.exec(delete(SignalSnapshot))

    code, err = await rebuild(settings, "--vendor", tenant.vendor.slug)
    assert code == 0, err
    assert f"{tenant.vendor.slug}: 1 partner-days of facts" in err
    async with db.session() as session:
        assert [f.model_dump() for f in await session.exec(select(SignalFact))] == [
            f.model_dump() for f in facts
        ]
        rebuilt = {
            (s.partner_id, s.day): s.values for s in await session.exec(select(SignalSnapshot))
        }
    # Today's of every partner: the one that sold as before, the other one new.
    assert {k: v for k, v in rebuilt.items() if k in snapshots} == snapshots
    assert len(rebuilt) == len(tenant.partners)

    code, err = await rebuild(settings, "--vendor", "no-such-vendor")
    assert code == 1
    assert "no such vendor" in err
