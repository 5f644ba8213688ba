"""CSV exports for finance reconciliation (issue 14, item 6): `GET /exports/{kind}.csv`
streams a registry kind's rows (commissions, payouts, forecasts, audit trail) a keyset page
at a time, role-checked by the EXPORTS policy table and row-checked by each kind's
readable statement; formulas are defused; `channelboard exports write` writes the same
CSV to a file, never left part-written by a kill."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url, update

from api.cli.whole_files import whole_file
from api.settings import Settings
from deal_registration.events import Line
from earnings.programs import BaseRate, Rules
from forecasts import exports
from infra.clock import OffsetClock
from infra.csv_cells import text_cell
from infra.db import Database
from partners.models import Partner, User
from partners.roles import Role
from schema.context import Services
from tests.earnings.scenarios import generate, make_program
from tests.factories import Tenant, add_products, approve_sale, dispatch, principal_of
from tests.processes import cli_process, kill, process_env
from tests.redis_proxy import HoldingProxy
from tests.subscriptions.scenarios import CLOUD
from tests.support import GQL

FORMULA = '=HYPERLINK("http://evil.example")'


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def export(
    client: httpx.AsyncClient, gql: GQL, kind: str, user: User | None = None, query: str = ""
) -> httpx.Response:
    headers = {} if user is None else {"authorization": f"Bearer {gql.token(user)}"}
    return await client.get(f"/exports/{kind}.csv{query}", headers=headers)


@pytest.fixture
async def ledger(db: Database, clock: OffsetClock, tenant: Tenant, services: Services) -> None:
    """Commissions for both partners (8 %), partner 0 named like a formula."""
    await make_program(db, clock, tenant, Rules(base_rates=(BaseRate(rate_bp=800),)))
    async with db.transaction() as session:
        await session.exec(
            update(Partner).where(Partner.id == tenant.partners[0].id).values(name=FORMULA)
        )  # type: ignore[call-overload]
    for partner, amount in ((0, 1_000_00), (0, 2_000_00), (1, 500_00)):
        await approve_sale(db, clock, tenant, partner=partner, amount=amount)
    while await dispatch(services):
        pass


@pytest.mark.usefixtures("ledger")
async def test_commissions_export_by_role_partner_and_vendor(
    client: httpx.AsyncClient, gql: GQL, tenant: Tenant, other_tenant: Tenant
) -> None:
    response = await export(client, gql, "commissions", tenant.user(Role.FINANCE))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith('attachment; filename="commissions-')
    assert "content-length" not in response.headers  # streamed, not built first
    assert response.text.splitlines()[0] == ",".join(exports.KINDS["commissions"].columns)
    rows = rows_of(response.text)
    assert sorted(int(r["amount_minor"]) for r in rows) == [4_000, 8_000, 16_000]
    assert {r["amount"] for r in rows} == {"40.00", "80.00", "160.00"}
    # The formula-like partner name is defused; numbers stay numbers.
    assert {r["partner_name"] for r in rows if r["partner_id"] == str(tenant.partners[0].id)} == {
        "'" + FORMULA
    }
    assert all(r["rule"] and r["rule"][0] not in "=+-@" for r in rows)

    mine = rows_of(
        (await export(client, gql, "commissions", tenant.user(Role.PARTNER_ADMIN, 1))).text
    )
    assert {r["partner_id"] for r in mine} == {str(tenant.partners[1].id)}
    theirs = await export(client, gql, "commissions", other_tenant.user(Role.FINANCE))
    assert theirs.status_code == 200
    assert rows_of(theirs.text) == []
    for role in (Role.CHANNEL_MANAGER, Role.PARTNER_REP):
        refused = await export(client, gql, "commissions", tenant.user(role))
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    anonymous = await export(client, gql, "commissions")
    assert anonymous.status_code == 401
    assert (await export(client, gql, "salaries", tenant.user(Role.FINANCE))).status_code == 404
    bad = await export(client, gql, "commissions", tenant.user(Role.FINANCE), "?since=yesterday")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["extensions"]["code"] == "INVALID_DATETIME"
    later = await export(client, gql, "commissions", tenant.user(Role.FINANCE), "?since=2999-01-01")
    assert rows_of(later.text) == []


@pytest.mark.parametrize(
    "query",
    [
        "?since=0001-01-01T00:00:00%2B14:00",  # before year 1 in UTC
        "?until=9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
        "?until=9999-06-01",  # past the last year services can compute from
    ],
)
@pytest.mark.parametrize("kind", ["commissions", "audit", "subscriptions"])
async def test_export_bounds_outside_the_instant_range_are_refused(
    client: httpx.AsyncClient, gql: GQL, tenant: Tenant, query: str, kind: str
) -> None:
    """An edge of Python's range with an offset overflowed on its way to UTC inside the
    stream, after the 200 had been sent: a broken download, not an error."""
    response = await export(client, gql, kind, tenant.user(Role.VENDOR_ADMIN), query)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_DATETIME"


@pytest.mark.parametrize(
    "query",
    [
        "?since=2026-12-02&until=2026-12-01",  # inverted
        "?since=2026-12-01T00:00:00Z&until=2026-12-01T01:00:00%2B01:00",  # the same instant
    ],
)
async def test_export_bounds_that_select_nothing_are_refused(
    client: httpx.AsyncClient, gql: GQL, tenant: Tenant, query: str
) -> None:
    """An inverted or empty range was a 200 with an empty CSV: a mistyped range read as
    "nothing happened then"."""
    response = await export(client, gql, "commissions", tenant.user(Role.FINANCE), query)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "INVALID_RANGE"
    assert error["message"] == "`since` must be before `until`."


@pytest.mark.usefixtures("ledger")
async def test_payouts_forecasts_and_audit_exports(
    client: httpx.AsyncClient, gql: GQL, tenant: Tenant, clock: OffsetClock, db: Database,
    services: Services,
) -> None:  # fmt: skip
    clock.advance(timedelta(days=40))
    statements = await generate(db, clock, tenant, services.claim_signals)
    payouts = rows_of((await export(client, gql, "payouts", tenant.user(Role.FINANCE))).text)
    assert sorted(int(r["total_minor"]) for r in payouts) == sorted(
        s.total_minor for s in statements
    )
    own = rows_of((await export(client, gql, "payouts", tenant.user(Role.PARTNER_ADMIN))).text)
    assert {r["partner_id"] for r in own} == {str(tenant.partners[0].id)}

    set_threshold = """mutation { concentrationThresholdSet(input: {metric: TOP_PARTNER_SHARE,
      maxShareBp: 5000, reason: "+1 for the board"}) { userErrors { code } } }"""
    await gql.data(set_threshold, as_user=tenant.user(Role.VENDOR_ADMIN))
    audit = rows_of((await export(client, gql, "audit", tenant.user(Role.VENDOR_ADMIN))).text)
    entry = next(r for r in audit if r["entity_type"] == "concentration_threshold")
    assert entry["reason"] == "'+1 for the board"
    # Finance reads the money settings only; partners no audit trail at all.
    finance = rows_of((await export(client, gql, "audit", tenant.user(Role.FINANCE))).text)
    assert all(r["entity_type"] != "concentration_threshold" for r in finance)
    assert (await export(client, gql, "audit", tenant.user(Role.PARTNER_ADMIN))).status_code == 403
    forecasts = await export(client, gql, "forecasts", tenant.user(Role.PARTNER_REP))
    assert forecasts.status_code == 403


@pytest.mark.usefixtures("ledger")
async def test_an_export_is_read_a_keyset_page_at_a_time(db: Database, tenant: Tenant) -> None:
    finance = principal_of(tenant.user(Role.FINANCE))
    kind = exports.KINDS["commissions"]
    async with db.read_session() as session:
        pages = [page async for page in exports.pages(session, finance, kind, page=2)]
        chunks = [chunk async for chunk in exports.stream(session, finance, kind, page=2)]
    assert [len(p) for p in pages] == [2, 1]
    ids = [row[0] for page in pages for row in page]
    assert ids == sorted(ids)  # id (time) order, each page after the last
    assert len(chunks) == 3  # the header, then one chunk per page
    assert chunks[0] == ",".join(kind.columns) + "\r\n"


@pytest.mark.parametrize(
    ("text", "cell"),
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
     ("\tx", "'\tx"), ("plain", "plain"), ("", "")],
)  # fmt: skip
def test_text_cells_never_start_a_formula(text: str, cell: str) -> None:
    assert text_cell(text) == cell


async def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api", "exports", *args, env=process_env(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


@pytest.mark.slow
@pytest.mark.usefixtures("ledger")
async def test_the_command_line_writes_an_export_to_a_file(
    settings: Settings, tenant: Tenant, tmp_path: Path
) -> None:
    out = tmp_path / "commissions.csv"
    code, err = await _cli(settings, "write", "commissions", "--vendor", tenant.vendor.slug,
                           "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert "wrote 3 rows" in err
    rows: list[dict[str, Any]] = rows_of(out.read_text())
    assert sorted(int(r["amount_minor"]) for r in rows) == [4_000, 8_000, 16_000]
    code, err = await _cli(settings, "write", "wages", "--vendor", tenant.vendor.slug,
                           "--out", str(out))  # fmt: skip
    assert code == 2
    code, err = await _cli(settings, "write", "audit", "--vendor", "nobody", "--out", str(out))
    assert code == 1


async def test_subscriptions_export(
    client: httpx.AsyncClient, gql: GQL, tenant: Tenant, other_tenant: Tenant, db: Database,
    clock: OffsetClock, services: Services,
) -> None:  # fmt: skip
    async with db.transaction() as session:
        await add_products(session, clock, tenant, (CLOUD,))
    for partner, amount in ((0, 1_200_00), (1, 600_00)):
        await approve_sale(db, clock, tenant, partner=partner, amount=amount,
                           lines=[Line(CLOUD.sku, 1, amount)])  # fmt: skip
    while await dispatch(services):
        pass
    response = await export(client, gql, "subscriptions", tenant.user(Role.FINANCE))
    assert response.status_code == 200
    rows = rows_of(response.text)
    assert sorted((int(r["amount_minor"]), int(r["arr_minor"]), r["status"]) for r in rows) == [
        (60_000, 60_000, "ACTIVE"), (120_000, 120_000, "ACTIVE"),
    ]  # fmt: skip
    own = rows_of(
        (await export(client, gql, "subscriptions", tenant.user(Role.PARTNER_ADMIN))).text
    )
    assert [r["partner_id"] for r in own] == [str(tenant.partners[0].id)]
    theirs = await export(client, gql, "subscriptions", other_tenant.user(Role.FINANCE))
    assert rows_of(theirs.text) == []
    for role in (Role.CHANNEL_MANAGER, Role.PARTNER_REP):
        refused = await export(client, gql, "subscriptions", tenant.user(role))
        assert refused.status_code == 403


async def test_export_bounds_accepted_before_are_accepted_still(
    client: httpx.AsyncClient, gql: GQL, tenant: Tenant
) -> None:
    """datetime.fromisoformat read since/until before: what it took is taken still."""
    query = "?since=2027-01-15T09:30:00%2B01:00:00&until=2027-01-16T09:30:00%20%2B01:00"
    response = await export(client, gql, "audit", tenant.user(Role.VENDOR_ADMIN), query)
    assert response.status_code == 200, response.text


@pytest.mark.slow
@pytest.mark.usefixtures("ledger")
async def test_an_export_killed_mid_write_leaves_the_lastwhole_file(
    settings: Settings, tenant: Tenant, tmp_path: Path
) -> None:
    """Killed once it has begun the file (``--out`` cut short, or another file beside it),
    its next page read held in a proxy before PostgreSQL: ``--out`` holds the last whole
    export still (before, it was left truncated), and the next run writes it whole."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("the proxy that holds the page read stands before PostgreSQL")
    out = tmp_path / "commissions.csv"
    args = ("write", "commissions", "--vendor", tenant.vendor.slug, "--out", str(out))
    code, err = await _cli(settings, *args)
    assert code == 0, err
    whole = out.read_bytes()
    assert len(rows_of(whole.decode())) == 3

    def begun(_data: bytes) -> bool:
        """The command has begun writing: ``out`` changed, or another file is beside it."""
        return out.read_bytes() != whole or len(list(tmp_path.iterdir())) > 1

    proxy = HoldingProxy(
        f"postgresql://{url.host}:{url.port or 5432}", b"", hold_marker=True, carries=begun
    )
    async with proxy.running() as port:
        through = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        async with cli_process(settings, "exports", *args, DATABASE_URL=through) as process:
            ended = asyncio.create_task(process.wait())
            held = asyncio.create_task(proxy.holding.wait())
            await asyncio.wait({ended, held}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
            assert held.done(), "the export ended unheld"
            await kill(process)
            proxy.discard = True
            proxy.release.set()
    assert out.read_bytes() == whole  # not cut short

    code, err = await _cli(settings, *args)
    assert code == 0, err
    assert out.read_bytes() == whole


def test_an_export_file_is_replaced_whole_or_left_as_it_was(tmp_path: Path) -> None:
    """A failure the command sees half-way leaves FILE as it was and no partial file; a
    whole export replaces FILE (with the mode open() gives a new file, not a temporary
    file's 0600); a device (no file to replace) is written as it is."""
    out = tmp_path / "audit.csv"
    out.write_bytes(b"the last whole export")

    def cut_short() -> None:
        with whole_file(out) as file:
            file.write("id,at\r\n")
            raise OSError("the database went away")

    with pytest.raises(OSError, match="the database went away"):
        cut_short()
    assert out.read_bytes() == b"the last whole export"
    assert [p.name for p in tmp_path.iterdir()] == ["audit.csv"]
    with whole_file(out) as file:
        file.write("id,at\r\n")
    assert out.read_bytes() == b"id,at\r\n"
    assert [p.name for p in tmp_path.iterdir()] == ["audit.csv"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes a file
    with whole_file(Path(os.devnull)) as file:
        file.write("id,at\r\n")
    assert Path(os.devnull).is_char_device()


def test_an_export_through_a_symbolic_link_replaces_its_target(tmp_path: Path) -> None:
    """FILE a link (a "latest" export a reconciliation job reads): the link stays, and what
    it points to is replaced whole (the rename into place replaced the link itself)."""
    exports = tmp_path / "exports"
    exports.mkdir()
    target = exports / "2027-01.csv"
    target.write_bytes(b"the last whole export")
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    with whole_file(link) as file:
        file.write("id,at\r\n")
    assert link.is_symlink()
    assert target.read_bytes() == b"id,at\r\n"
    assert sorted(p.name for p in exports.iterdir()) == ["2027-01.csv"]
