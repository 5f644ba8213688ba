"""`channelboard deals expire` writes down protections the clock has ended."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.settings import Settings
from deal_registration.registrations.models import DealRegistration, DealStatus
from infra.clock import OffsetClock
from infra.db import Database
from partners.roles import Role
from tests.deal_registration.registrations.scenarios import register
from tests.factories import Tenant, add_products

pytestmark = pytest.mark.slow


async def test_expire_command(
    db: Database, clock: OffsetClock, tenant: Tenant, settings: Settings
) -> None:
    clock.freeze(datetime.now(UTC) - timedelta(days=91))  # approved 91 days ago
    async with db.transaction() as session:
        await add_products(session, clock, tenant)
    reg = await register(
        db, clock, tenant.user(Role.PARTNER_REP), approve_as=tenant.user(Role.VENDOR_ADMIN)
    )
    env = {**os.environ, "CHANNELBOARD_DATABASE_URL": settings.database_url,
           "CHANNELBOARD_ENV": "test"}  # fmt: skip
    channelboard = Path(sys.executable).parent / "channelboard"
    process = await asyncio.create_subprocess_exec(
        str(channelboard), "deals", "expire", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert "1 registration(s) expired" in err.decode()
    async with db.session() as session:
        row = await session.get(DealRegistration, reg.id)
    assert row is not None
    assert row.status is DealStatus.EXPIRED
