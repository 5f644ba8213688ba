"""The audit log written to a file by a command SIGKILLed half-way (just before it reads its
second page of entries, the first page written), then run again: `channelboard audit export
--out FILE` and `channelboard exports write audit --out FILE`, on SQLite and PostgreSQL.
FILE is never left cut short: it stays absent, or the last whole export, and the rerun
writes exactly what an uninterrupted run writes. Before, `audit export` wrote only to
standard output: a run killed half-way left `> FILE` a shorter CSV of whole rows that nothing
told from a complete one."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest

from api.settings import Settings
from infra.audit import AuditEntry
from infra.clock import OffsetClock
from infra.db import Database
from tests.factories import Tenant
from tests.processes import KILLED, cli_killed_at, process_env, run_to_end

pytestmark = pytest.mark.slow

ENTRIES = 6_200  # two pages of `audit export` (5,000 a page), seven of `exports write`


@pytest.fixture
async def logged(db: Database, clock: OffsetClock, tenant: Tenant) -> None:
    start = clock.now() - timedelta(days=1)
    async with db.transaction() as session:
        session.add_all(
            AuditEntry(
                vendor_id=tenant.vendor.id,
                at=start + timedelta(seconds=n),
                actor="operator:test",
                action="partner.updated",
                entity_type="partner",
                entity_id=f"p-{n}",
                before={"name": f"Old {n}"},
                after={"name": f"New {n}"},
                reason=None,
            )  # fmt: skip
            for n in range(ENTRIES)
        )


async def _run(settings: Settings, *args: str) -> str:
    code, output = await run_to_end(
        sys.executable,
        "-m",
        "api",
        *args,
        env=process_env(settings),
        cwd=str(Path.cwd()),
        within=120,
    )
    assert code == 0, output
    return output


def _partials(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.endswith(".part")]


@pytest.mark.usefixtures("logged")
@pytest.mark.parametrize(
    "command", [("audit", "export"), ("exports", "write", "audit")], ids=["audit", "exports"]
)
async def test_an_audit_export_killed_half_way_leaves_no_cut_short_file(
    settings: Settings, tenant: Tenant, tmp_path: Path, command: tuple[str, ...]
) -> None:
    out = tmp_path / "audit.csv"
    args = (*command, "--vendor", tenant.vendor.slug, "--out", str(out))
    await _run(settings, *args)
    whole = out.read_bytes()
    assert whole.count(b"\r\n") > ENTRIES  # every entry (and the header)

    for before in (whole, None):  # FILE the last whole export, then absent
        if before is None:
            out.unlink()
        code, output = await cli_killed_at(settings, "FROM audit_entry", 2, *args)
        assert code == KILLED, output
        assert (out.read_bytes() if out.exists() else None) == before
        [partial] = _partials(tmp_path)
        assert 0 < partial.stat().st_size < len(whole)  # killed half-way through
        partial.unlink()

    await _run(settings, *args)
    assert out.read_bytes() == whole  # as an uninterrupted run
    assert _partials(tmp_path) == []
