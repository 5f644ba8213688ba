"""The world the data-leak fuzzes probe (tests/api/test_isolation_fuzz.py over HTTP,
test_isolation_ws.py over websockets): the demo of two vendors, enriched so that every kind
of record a caller must not read exists; per caller, what it must never read (``Secrets``:
row ids and texts) and the scanner that finds them in an answer, in any form; and documents
that select every leaf of a type."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import graphql
from sqlalchemy import text
from sqlmodel import col, select

from api.cli.demo import seed_demo
from api.settings import Settings
from catalogue import demo as catalogue_demo
from deal_registration.registrations import submission
from deal_registration.registrations.models import DealConflict, DealRegistration
from deal_registration.sales.models import OPEN_STATES, SaleClaim
from earnings.recurring import credit_retention
from forecasts.accuracy import close_all_due
from forecasts.quarters import Quarter
from incentives import rules as incentive_rules
from incentives.actions import Action, ActionKind
from incentives.daily import run_due
from incentives.models import IncentiveRuleVersion, Period
from infra.clock import OffsetClock
from migrations.metadata import target_metadata
from partners import groups
from partners import service as partners_service
from partners.models import Partner, User, Vendor
from partners.roles import Role
from pilots import service as pilots_service
from pilots.assignment import Candidate, assign
from pilots.models import Arm
from schema.context import Services
from signals.definitions import DEFINITIONS, Visibility
from tests.api.fuzzing import decode_id, graphql_id, node_types
from tests.deal_registration.registrations.scenarios import submit as submit_deal
from tests.factories import Tenant, create_contest, principal_of
from tests.support import GQL, _graphql_schema, multipart

NORTHWIND_ROLES = (
    "admin@northwind.example",
    "manager@northwind.example",
    "finance@northwind.example",
    "admin@acme.example",
    "rep@acme.example",
    "key@northwind",
)
CONTOSO_ROLES = ("admin@contoso.example", "admin@fabrikam.example", "rep@fabrikam.example")
CONTOSO_ROLES += ("key@contoso", "manager@contoso.example")
# Channel managers: each assigned its vendor's first partner only (Acme, Fabrikam).
MANAGERS = {"manager@northwind.example": "Acme Resellers",
            "manager@contoso.example": "Fabrikam Solutions"}  # fmt: skip
ACME_ROLES = ("admin@acme.example", "rep@acme.example")
PARTNER_ROLES = ACME_ROLES + ("admin@fabrikam.example", "rep@fabrikam.example")
ANONYMOUS = "anonymous"
# The other partner of each vendor (what the first one's users must not read): its users
# have secrets too (the first partner's private rows), for campaigns that take their part.
OTHER_PARTNER_ROLES = (
    "admin@globex.example", "rep@globex.example", "admin@wingtip.example", "rep@wingtip.example",
)  # fmt: skip

# Rows of the other partner a partner of the same program may read (by id or name):
# - partner: a contest's leaderboard names its participants (partner ids and names) unless
#   the contest hides them (design.md: "other partners' identities where a contest hides
#   them"); the demo's weekly race anonymises its top for partners, the other shows them.
# - contest_winner: a finished contest's winners are announced to its participants.
PUBLIC_ACROSS_PARTNERS = frozenset({"partner", "contest_winner"})

# Rows of the caller's own vendor no partner role may see (partners.access, docs/security.md
# "Vendor-internal fields", docs/signals.md "What partners see"). Partner groups (a
# pilot's treatment group among them), pilots and their arms, rules and their versions,
# payout reviews (a rule's hold: the partner reads the hold's partner note, not the review),
# risk flags, audit entries, API keys, webhooks, concentration settings. Not outbox events:
# a partner's own ledger entry names the event that credited it (`sourceEventId`, an opaque
# reference to its own sale for reconciliation); the events themselves are the vendor
# admin's (`outboxEvents`), and another partner's entries are checked as that partner's.
VENDOR_INTERNAL_TABLES = (
    "partner_group",
    "partner_group_member",
    "partner_group_membership",
    "pilot",
    "pilot_assignment",
    "incentive_rule",
    "incentive_rule_version",
    "incentive_rule_budget_change",
    "payout_review",
    "sale_claim_risk_flag",
    "audit_entry",
    "api_key",
    "webhook_endpoint",
    "concentration_threshold",
    "deal_conflict",
    "manager_assignment",
    "partner_tier_change",
)
# Text columns that are vendor-internal wherever they are (design.md: margins, risk, hold
# internals; the partner's internal notes; a staff notice's words; a pilot's description).
VENDOR_INTERNAL_TEXT = (
    ("partner", "internal_notes"),
    ("partner_tier_change", "reason"),
    ("sale_claim_risk_flag", "detail"),
    ("concentration_threshold", "reason"),
    ("payout_hold", "internal_note"),
    ("payout_review", "internal_note"),
)
VENDOR_ONLY_SIGNALS = [d for d in DEFINITIONS.values() if d.visibility is Visibility.VENDOR_ONLY]

# Types whose global ids an argument takes that are no Node (no `node(id)` for them).
ARGUMENT_ONLY_TYPES = {"IncentiveRuleVersion": "incentive_rule_version"}
PILOT_NAME = "Quiet margin pilot"
TRIAL_PROGRAM = "Margin bonus trial"
RULE_NAME = "Margin watch for staff"
# A contest eligible for the pilot's treatment arm only, and a rule aimed at the arm: what
# names the arm is read by vendor admins and finance (and the contest by the treatment's
# partners), never by channel managers nor the control arm.
ARM_CONTEST = "Margin sprint"
ARM_RULE = "Margin nudge for the few"
ARM_NOTICE = "A margin nudge fired for this partner"
STAFF_NOTICE = "Thin margin on this partner: call them before the quarter closes"
HOLD_REASON = "We review payouts of partners whose sales grew fast"
UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
B64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


@dataclass
class Secrets:
    """What one caller must never read: row ids and texts, each with where it comes from."""

    ids: dict[uuid.UUID, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    by_table: dict[str, list[uuid.UUID]] = field(default_factory=dict)

    def copy(self) -> Secrets:
        """A copy to add to (the lists of ``by_table`` too)."""
        tables = {table: list(ids) for table, ids in self.by_table.items()}
        return Secrets(dict(self.ids), dict(self.texts), tables)

    def discard(self, rows: Iterable[uuid.UUID]) -> None:
        """These rows are the caller's to read after all."""
        for row in rows:
            if self.ids.pop(row, None) is not None:
                for ids in self.by_table.values():
                    if row in ids:
                        ids.remove(row)

    def add_ids(self, rows: Iterable[uuid.UUID], why: str, table: str = "") -> None:
        for row in rows:
            if row not in self.ids:
                self.ids[row] = why
                self.by_table.setdefault(table, []).append(row)

    def add_text(self, value: str | None, why: str) -> None:
        if value and len(value) >= 8:
            self.texts.setdefault(value, why)

    def found_in(self, body: Any, sent: str) -> list[str]:
        """Each secret the answer names, in any form: a UUID (with or without dashes), a
        global id of any type or a cursor (base64 of either), a text. An error may echo
        what the caller sent (a literal the validation refused): what was sent is no secret
        to its sender there; in data it is (the record was served)."""
        found: list[str] = []
        for part, known in (
            (body.get("data"), set()),
            ([body.get("errors"), body.get("extensions")], _ids_in(sent)),
        ):
            answer = json.dumps(part, ensure_ascii=False)
            found += [
                f"{self.ids[i]} {i}" for i in _ids_in(answer) if i in self.ids and i not in known
            ]
            found += [
                f"{why}: {t!r}" for t, why in self.texts.items() if t in answer and t not in sent
            ]
        return sorted(set(found))

    def global_ids(self, types: dict[str, str], per_type: int) -> dict[str, list[str]]:
        """Up to ``per_type`` global ids of the secret rows of each Node type."""
        return {
            type_name: [graphql_id(type_name, i) for i in self.by_table.get(table, [])[:per_type]]
            for type_name, table in types.items()
            if self.by_table.get(table)
        }


async def _conflicting(services: Services, partner: Partner) -> set[uuid.UUID]:
    """The registrations in conflict with one of ``partner``'s (either way round)."""
    async with services.db.session() as session:
        own = {
            r.id
            for r in await session.exec(
                select(DealRegistration).where(DealRegistration.partner_id == partner.id)
            )
        }
        pairs = await session.exec(select(DealConflict))
        return {
            other
            for c in pairs
            for mine, other in (
                (c.registration_id, c.other_registration_id),
                (c.other_registration_id, c.registration_id),
            )
            if mine in own
        } - own


def _ids_in(answer: str) -> set[uuid.UUID]:
    out = {uuid.UUID(m) for m in UUID.findall(answer)}
    for token in B64.findall(answer):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decode(token + "=" * (-len(token) % 4))
            except (binascii.Error, ValueError):
                continue
            if raw.startswith(b"c:") and len(raw) == 18:  # a cursor
                out.add(uuid.UUID(bytes=raw[2:]))
            out |= {uuid.UUID(m) for m in UUID.findall(raw.decode("latin-1"))}
    return out


@dataclass
class World:
    """The callers' tokens and what each must never read."""

    tokens: dict[str, str | None]  # None: anonymous
    secrets: dict[str, Secrets]
    own_ids: dict[str, dict[str, list[str]]]  # role -> Node type -> ids of its vendor's rows
    users: dict[str, User] = field(default_factory=dict)  # by e-mail
    partners: dict[str, Partner] = field(default_factory=dict)  # by name
    vendors: dict[str, Vendor] = field(default_factory=dict)  # by slug


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def _rows_of(services: Services, column: str, owner: uuid.UUID) -> dict[str, list[uuid.UUID]]:
    """Per table, the ids of its rows whose ``column`` is ``owner`` (or, for a table without
    the column, whose parent's is, one foreign key away: a contest's credits, a claim's
    serials). Compared in Python: SQLite and PostgreSQL store UUIDs differently."""
    metadata = target_metadata()
    owned: dict[str, set[uuid.UUID]] = {}
    async with services.db.session() as session:
        for name, table in sorted(metadata.tables.items()):
            if "id" in table.c and column in table.c:
                rows = await session.execute(text(f'SELECT id, "{column}" FROM "{name}"'))
                owned[name] = {_uuid(i) for i, o in rows.all() if _uuid(o) == owner} - {None}  # type: ignore[misc]
        out = {name: sorted(ids) for name, ids in owned.items()}
        for name, table in sorted(metadata.tables.items()):
            if "id" not in table.c or column in table.c:
                continue
            found: set[uuid.UUID] = set()
            for fk in table.foreign_keys:
                parent = fk.column.table.name
                if parent in owned and fk.column.name == "id":
                    rows = await session.execute(
                        text(f'SELECT id, "{fk.parent.name}" FROM "{name}"')
                    )
                    found |= {
                        u for i, p in rows.all() if _uuid(p) in owned[parent] and (u := _uuid(i))
                    }
            if found:
                out[name] = sorted(found)
    return out


async def _texts_of(
    services: Services, table: str, columns: Iterable[str], column: str, owner: uuid.UUID
) -> list[str]:
    found = []
    async with services.db.session() as session:
        for name in columns:
            if name not in target_metadata().tables[table].c:
                continue
            rows = await session.execute(text(f'SELECT "{name}", "{column}" FROM "{table}"'))
            found += [str(v) for v, o in rows.all() if v and _uuid(o) == owner]
    return found


NAME_COLUMNS = ("name", "email", "display_name", "title", "slug")


async def _vendor_secrets(services: Services, vendor: Vendor, other: Vendor) -> Secrets:
    """Every id of ``vendor``'s rows, and its names that ``other`` does not share."""
    secrets = Secrets()
    for table, ids in (await _rows_of(services, "vendor_id", vendor.id)).items():
        secrets.add_ids(ids, f"{vendor.name}'s {table}", table)
    secrets.add_ids([vendor.id], f"{vendor.name}'s vendor row", "vendor")
    shared: set[str] = set()
    for table in target_metadata().tables:
        if "vendor_id" in target_metadata().tables[table].c:
            shared |= set(await _texts_of(services, table, NAME_COLUMNS, "vendor_id", other.id))
    shared.add(other.name)
    for table in target_metadata().tables:
        if "vendor_id" in target_metadata().tables[table].c:
            for value in await _texts_of(services, table, NAME_COLUMNS, "vendor_id", vendor.id):
                if not any(value in s or s in value for s in shared if len(s) >= 8):
                    secrets.add_text(value, f"{vendor.name}'s {table} name")
    secrets.add_text(vendor.name, "the other vendor's name")
    return secrets


async def _partner_secrets(services: Services, partner: Partner, secrets: Secrets) -> None:
    """Every row of ``partner``'s but those public within the program; its users' names
    and emails."""
    for table, ids in (await _rows_of(services, "partner_id", partner.id)).items():
        if table not in PUBLIC_ACROSS_PARTNERS:
            secrets.add_ids(ids, f"{partner.name}'s {table}", table)
    for value in await _texts_of(
        services, "user_account", ("email", "display_name"), "partner_id", partner.id
    ):
        secrets.add_text(value, f"{partner.name}'s user")
    for value in await _texts_of(
        services, "partner_forecast_revision", ("note",), "partner_id", partner.id
    ):
        secrets.add_text(value, f"{partner.name}'s forecast note")
    if partner.name == "Wingtip Traders":  # its forecast, and so any rollup of it alone
        secrets.add_text(WINGTIP_FORECAST, "Wingtip's forecast figure")
        secrets.add_text(WINGTIP_FORECAST.replace(".", ""), "Wingtip's forecast figure")


async def _internal_secrets(services: Services, vendor: Vendor, secrets: Secrets) -> None:
    rows = await _rows_of(services, "vendor_id", vendor.id)
    for table in VENDOR_INTERNAL_TABLES:
        secrets.add_ids(rows.get(table, []), f"vendor-internal {table}", table)
    for table, column in VENDOR_INTERNAL_TEXT:
        for value in await _texts_of(services, table, (column,), "vendor_id", vendor.id):
            secrets.add_text(value, f"vendor-internal {table}.{column}")
    for table in ("pilot", "partner_group", "incentive_rule"):
        for value in await _texts_of(
            services, table, ("name", "description"), "vendor_id", vendor.id
        ):
            secrets.add_text(value, f"vendor-internal {table} name")
    for definition in VENDOR_ONLY_SIGNALS:
        secrets.add_text(definition.name, "a vendor-only signal")
        secrets.add_text(definition.label, "a vendor-only signal's label")
    secrets.add_text(STAFF_NOTICE, "a staff notice")
    secrets.texts.setdefault('"CONTROL"', "a pilot arm")
    secrets.texts.setdefault('"TREATMENT"', "a pilot arm")


ArmRows = dict[str, tuple[str, list[uuid.UUID], list[str]]]  # why -> (table, ids, texts)


async def _arm_secrets(services: Services) -> dict[uuid.UUID, ArmRows]:
    """By vendor: the rows that name a pilot's treatment arm (partner groups a pilot
    manages, contests eligible for one, rules aimed at one, those rules' versions and
    firings), with their names."""
    out: dict[uuid.UUID, ArmRows] = {}
    async with services.db.session() as session:

        async def rows(query: str) -> list[Any]:
            return list((await session.execute(text(query))).all())

        arms = await rows(
            "SELECT id, vendor_id, name, description FROM partner_group"
            " WHERE managed_by IS NOT NULL"
        )
        contests = await rows("SELECT id, vendor_id, name, eligible_group_ids FROM contest")
        rule_rows = await rows("SELECT id, vendor_id, name, target_group_id FROM incentive_rule")
        versions = await rows("SELECT id, rule_id FROM incentive_rule_version")
        firings = await rows("SELECT id, rule_id FROM incentive_rule_firing")
    arm_ids = {_uuid(i): _uuid(v) for i, v, _, _ in arms}
    for vendor in {v for v in arm_ids.values() if v}:
        mine = {i for i, v in arm_ids.items() if v == vendor and i}
        groups_ = [(i, n, d) for i, v, n, d in arms if _uuid(i) in mine]
        on_arm = [
            (_uuid(i), n) for i, v, n, eligible in contests
            if _uuid(v) == vendor and any(g.hex in str(eligible) for g in mine)
        ]  # fmt: skip
        aimed = [(_uuid(i), n) for i, v, n, t in rule_rows if t is not None and _uuid(t) in mine]
        aimed_ids = {i for i, _ in aimed}
        out[vendor] = {
            "a pilot's treatment group": (
                "partner_group", sorted(mine), [t for _, n, d in groups_ for t in (n, d) if t],
            ),
            "a contest on the treatment arm": (
                "contest", [i for i, _ in on_arm if i], [n for _, n in on_arm],
            ),
            "a rule on the treatment arm": (
                "incentive_rule", [i for i in aimed_ids if i], [n for _, n in aimed],
            ),
            "a version of a rule on the treatment arm": (
                "incentive_rule_version",
                [i for i, r in ((_uuid(a), _uuid(b)) for a, b in versions) if r in aimed_ids and i],
                [],
            ),
            "a firing of a rule on the treatment arm": (
                "incentive_rule_firing",
                [i for i, r in ((_uuid(a), _uuid(b)) for a, b in firings) if r in aimed_ids and i],
                [ARM_NOTICE],
            ),
        }  # fmt: skip
    return out


async def settle(services: Services) -> None:
    while await services.outbox.dispatch_pending():
        pass


async def settle_clock_jobs(services: Services) -> None:
    """Run once, now, the passes the app's clock jobs make of the day the clock was moved to
    (the daily rule run with its day's signal snapshots, retention bonuses, pilot ends,
    quarter closes), then the outbox: each is done for that day, so the jobs' own next
    passes (every 5 to 60 s) find nothing to write. Without it, the daily rule run's pass a
    minute later wrote its snapshots and run rows, one vendor at a time, into the middle of
    probes that fingerprint the database (two refused mutations "changed" it, under load)."""
    db, clock = services.db, services.clock
    await run_due(db, clock)
    await credit_retention(db, clock)
    await pilots_service.end_due(db, clock)
    await close_all_due(db, clock)
    await settle(services)


PROGRAM = """mutation($input: EarningProgramCreateInput!) { earningProgramCreate(input: $input) {
  program { id } userErrors { code field message } } }"""


async def enrich_vendor(
    gql: GQL, services: Services, clock: OffsetClock, vendor: Vendor, partners: list[Partner]
) -> str:
    """A second admin, a program, a group of ``partners`` with a started pilot whose control
    arm holds the first, an incentive rule on a vendor-only signal that fires for them (a
    recommendation, a payout review, a staff notice), an API key (its secret)."""
    db = services.db
    now = clock.now()
    async with db.transaction() as session:
        admin = (
            await session.exec(
                select(User).where(User.vendor_id == vendor.id, User.role == Role.VENDOR_ADMIN)
            )
        ).first()
        assert admin is not None
        second = await partners_service.create_user(
            session, clock, vendor_id=vendor.id, email=f"second-admin@{vendor.slug}.example",
            role=Role.VENDOR_ADMIN, display_name=f"Second Admin of {vendor.name}",
        )  # fmt: skip
    program = await gql.data(PROGRAM, {"input": {"name": f"{vendor.name} Rewards",
        "currency": "USD", "kind": "BONUS", "rules": {"baseRates": [{"rateBp": 800}]}}},
        as_user=admin)  # fmt: skip
    assert not program["earningProgramCreate"]["userErrors"], program
    created = decode_id(program["earningProgramCreate"]["program"]["id"])
    program_id = uuid.UUID(created.split(":")[1])
    async with db.transaction() as session:
        principal = principal_of(admin)
        group = await groups.create_group(
            session, principal, clock, name=f"{vendor.name} pilot cohort",
            rule=[("region", "IN", sorted({p.region for p in partners}))],
        )  # fmt: skip
        candidates = [Candidate(p.id, p.region, p.tier) for p in partners]
        pilot_seed = next(
            n for n in range(1000) if assign(candidates, n)[partners[0].id][0] is Arm.CONTROL
        )
        pilot = await pilots_service.create_pilot(
            session, principal, clock, name=PILOT_NAME, group_id=group.id,
            ends_at=now + timedelta(days=30), seed=pilot_seed,
            description="Does a margin bonus pay for itself?",
        )  # fmt: skip
        await pilots_service.start_pilot(session, principal, clock, pilot_id=pilot.id)
        treatment = graphql_id("PartnerGroup", pilot.treatment_group_id)
        rule = await incentive_rules.create_rule(
            session, principal, clock, name=RULE_NAME, period=Period.DAY,
            condition="gross_margin == null || gross_margin < 2.0",
            actions=[
                Action(ActionKind.RECOMMEND, days=7, title="Book a mix review",
                       text="Talk to us about your product mix"),
                Action(ActionKind.NOTIFY_STAFF, message=STAFF_NOTICE),
                Action(ActionKind.PAYOUT_HOLD, days=14, partner_reason=HOLD_REASON),
                Action(ActionKind.RATE_OVERLAY, days=14, program_id=program_id, delta_bp=150),
            ],
        )  # fmt: skip
        [version] = (
            await session.exec(
                select(IncentiveRuleVersion.id).where(IncentiveRuleVersion.rule_id == rule.id)
            )
        ).all()
        await incentive_rules.approve(
            session, principal_of(second), clock, version_id=version, reason="four eyes"
        )
        arm_rule = await incentive_rules.create_rule(
            session, principal, clock, name=f"{vendor.name} {ARM_RULE}", period=Period.DAY,
            condition="revenue_30d >= 0", target_group_id=pilot.treatment_group_id,
            actions=[Action(ActionKind.NOTIFY_STAFF, message=ARM_NOTICE)],
        )  # fmt: skip
        [arm_version] = (
            await session.exec(
                select(IncentiveRuleVersion.id).where(IncentiveRuleVersion.rule_id == arm_rule.id)
            )
        ).all()
        await incentive_rules.approve(
            session, principal_of(second), clock, version_id=arm_version, reason="four eyes"
        )
        key = await partners_service.create_api_key(
            session, principal, clock, name=f"{vendor.name} integration", role=Role.VENDOR_ADMIN
        )
    # A bonus for the pilot's treatment arm only: its partners read its name beside what it
    # paid them; the control arm's never learn it exists.
    trial = {"name": f"{vendor.name} {TRIAL_PROGRAM}", "currency": "USD", "kind": "BONUS",
             "effectiveFrom": (now - timedelta(days=1)).isoformat(),
             "rules": {"baseRates": [{"rateBp": 300}]}, "targetGroupIds": [treatment]}  # fmt: skip
    await _ok(gql, PROGRAM, {"input": trial}, admin)
    sprint = {"name": f"{vendor.name} {ARM_CONTEST}", "publish": True,
              "startsAt": (now - timedelta(hours=1)).isoformat(),
              "endsAt": (now + timedelta(days=20)).isoformat(),
              "eligibility": {"groupIds": [treatment]}}  # fmt: skip
    await _ok(gql, CONTEST_CREATE, {"input": sprint}, admin)
    await settle(services)
    await run_due(db, clock)
    await settle(services)
    return key.secret


CONTEST_CREATE = """mutation($input: ContestCreateInput!) { contestCreate(input: $input) {
  contest { id } userErrors { code field message } } }"""
CONTOSO_USERS = (
    ("finance@contoso.example", "Fern Contoso", Role.FINANCE),
    ("manager@contoso.example", "Mick Contoso", Role.CHANNEL_MANAGER),
    ("admin@wingtip.example", "Willa Wingtip", Role.PARTNER_ADMIN),
    ("rep@wingtip.example", "Walt Wingtip", Role.PARTNER_REP),
)
CONTOSO_SERIALS = [f"CTS-{n:06d}" for n in range(1, 21)]  # 1-10 Fabrikam's, 11-20 Wingtip's
SERIALS_IMPORT = """mutation($input: SerialsImportInput!) { serialsImport(input: $input) {
  result { applied inserted } userErrors { field code message } } }"""
CLAIM = """mutation($input: SaleClaimCreateInput!) { saleClaimCreate(input: $input) {
  saleClaim { id state } userErrors { field code message } } }"""
CLAIM_APPROVE = """mutation($input: SaleClaimApproveInput!) { saleClaimApprove(input: $input) {
  saleClaim { state } userErrors { field code message } } }"""
PROFILE = """mutation($input: PayoutProfileSetInput!) { payoutProfileSet(input: $input) {
  userErrors { field code message } } }"""
STATEMENTS = """mutation($input: PayoutStatementsGenerateInput!) {
  payoutStatementsGenerate(input: $input) {
    statements { id status partnerId holds { id } } userErrors { field code message } } }"""
STATEMENT_STEP = """mutation($approve: PayoutStatementInput!, $paid: PayoutMarkPaidInput!) {
  payoutApprove(input: $approve) { statement { status } userErrors { code message } }
  payoutMarkPaid(input: $paid) { statement { status } userErrors { code message } } }"""
HOLD_RELEASE = """mutation($input: PayoutHoldReleaseInput!) { payoutHoldRelease(input: $input) {
  statement { status } userErrors { field code message } } }"""
PAYOUT_HOLD = """mutation($input: PayoutHoldInput!) { payoutHold(input: $input) {
  statement { status } userErrors { field code message } } }"""
FORECAST = """mutation($input: ForecastSubmitInput!) { forecastSubmit(input: $input) {
  userErrors { field code message } } }"""
PILOT_END = """mutation($input: PilotInput!) { pilotEnd(input: $input) {
  userErrors { field code message } } }"""
WINGTIP_HOLD_NOTE = "Wingtip's March invoices are under audit by our finance team"
WINGTIP_FORECAST_NOTE = "Wingtip's quarter hangs on the Sydney harbour tender"
WINGTIP_FORECAST = "31337.00"
MANAGER_ASSIGN = """mutation($input: PartnerManagerInput!) { partnerManagerAssign(input: $input) {
  userErrors { field code message } } }"""
TIER_SET = """mutation($input: PartnerTierSetInput!) { partnerTierSet(input: $input) {
  userErrors { field code message } } }"""
PRODUCT = """mutation($input: ProductUpsertInput!) { productUpsert(input: $input) {
  userErrors { field code message } } }"""
THRESHOLD = """mutation($input: ConcentrationThresholdSetInput!) {
  concentrationThresholdSet(input: $input) { userErrors { field code message } } }"""
# The program tiers a vendor admin moves each partner to (the reason is vendor-internal).
TIER_REASONS = {
    "Acme Resellers": ("ELITE", "Acme's renewal rate earned it Elite this year"),
    "Globex Systems": ("REGISTERED", "Globex dropped back: two quarters below its target"),
    "Fabrikam Solutions": ("PREMIER", "Fabrikam's outback growth earned it Premier"),
    "Wingtip Traders": ("SELECT", "Wingtip moves to Select while its audit runs"),
}


async def _ok(gql: GQL, document: str, variables: dict[str, Any], user: User) -> dict[str, Any]:
    """The data of a mutation that must succeed (no userErrors in any of its payloads)."""
    data = await gql.data(document, variables, as_user=user)
    for payload in data.values():
        assert not payload.get("userErrors"), data
    return data


async def claim_sale(
    gql: GQL, user: User, serials: list[str], amount: str, *, proof: bool = False
) -> str:
    """A sale claimed through the public API (with a PDF invoice when ``proof``); its id."""
    date = gql.clock.now().date().isoformat()
    claim = {"serials": serials, "customerName": f"Customer of {user.display_name}",
             "invoiceNumber": f"INV-{serials[0]}", "saleDate": date,
             "amount": {"amount": amount, "currency": "USD"}}  # fmt: skip
    if not proof:
        created = (await _ok(gql, CLAIM, {"input": claim}, user))["saleClaimCreate"]
        return str(created["saleClaim"]["id"])
    body = b"%PDF-1.4\n% invoice " + serials[0].encode() + b"\n%%EOF\n"
    response = await multipart(
        gql, CLAIM, {"input": {**claim, "proof": None}},
        {"variables.input.proof": (f"invoice-{serials[0]}.pdf", body, "application/pdf")},
        token=gql.token(user),
    )  # fmt: skip
    created = response.json()["data"]["saleClaimCreate"]
    assert not created["userErrors"], created
    return str(created["saleClaim"]["id"])


async def approve_claim(gql: GQL, admin: User, claim_id: str) -> None:
    """Approve a claim the vendor has to review (one approved on submission is left)."""
    data = await gql.data(CLAIM_APPROVE, {"input": {"id": claim_id}}, as_user=admin)
    errors = [(e["field"], e["code"]) for e in data["saleClaimApprove"]["userErrors"]]
    assert errors in ([], [("id", "INVALID_STATE")]), data


async def approve_open_claims(gql: GQL, services: Services, admin: User, partner: Partner) -> None:
    """Approve every claim of ``partner`` still open (as its vendor's ``admin``)."""
    async with services.db.session() as session:
        claims = await session.exec(
            select(SaleClaim.id).where(
                SaleClaim.partner_id == partner.id, col(SaleClaim.state).in_(OPEN_STATES)
            )
        )
        for claim in claims.all():
            await approve_claim(gql, admin, graphql_id("SaleClaim", claim))


async def _contoso_sales(
    gql: GQL, services: Services, clock: OffsetClock, users: dict[str, User],
    fabrikam: Partner, wingtip: Partner,
) -> None:  # fmt: skip
    """Contoso's claims as they happen, all through the public API: a base program, a
    serial registry imported (multipart), claims of Fabrikam's and Wingtip's users (with
    proof, and one of the other partner's serial, rejected) approved last month, that
    month's statements (Fabrikam's approved and paid, Wingtip's held with an internal note),
    and claims approved this month, which score in the Fabrikam Outback Cup."""
    admin = users["admin@contoso.example"]
    now = clock.now()
    program = {"name": "Contoso Partner Program", "currency": "USD", "kind": "BASE",
               "effectiveFrom": (now - timedelta(days=120)).isoformat(),
               "rules": {"baseRates": [{"rateBp": 500}],  # a tier each partner reaches
                         "tiers": [{"name": "Outback Gold", "threshold": "2000.00",
                                    "upliftBp": 100}]}}  # fmt: skip
    await _ok(gql, PROGRAM, {"input": program}, admin)
    profile = {"partnerId": graphql_id("Partner", fabrikam.id), "taxFormOnFile": True,
               "bankAccount": "AU12 3456 7890 1234"}  # fmt: skip
    await _ok(gql, PROFILE, {"input": profile}, admin)
    last_month = now - timedelta(days=now.day + 4)
    back = last_month - timedelta(days=3) - now  # the import, three days before the claims
    clock.advance(back)
    shipped = (clock.now() - timedelta(days=60)).date().isoformat()
    rows = ["serial,sku,shipped_to,region,shipped_at"] + [
        f"{s},NW-ROUTER-X1,{p.name},{p.region},{shipped}"
        for i, s in enumerate(CONTOSO_SERIALS)
        for p in [fabrikam if i < 10 else wingtip]
    ]  # fmt: skip
    imported = await multipart(
        gql, SERIALS_IMPORT, {"input": {"file": None}},
        {"variables.input.file": ("contoso.csv", ("\n".join(rows) + "\n").encode(), "text/csv")},
        token=gql.token(admin),
    )  # fmt: skip
    assert imported.json()["data"]["serialsImport"]["result"]["inserted"] == 20, imported.text
    clock.advance(timedelta(days=3))
    fab_rep, fab_admin = users["rep@fabrikam.example"], users["admin@fabrikam.example"]
    wing_rep, wing_admin = users["rep@wingtip.example"], users["admin@wingtip.example"]
    for user, serials, amount, proof in (
        (fab_rep, CONTOSO_SERIALS[0:2], "2598.00", True),
        (fab_admin, CONTOSO_SERIALS[2:3], "1299.00", False),
        (wing_rep, CONTOSO_SERIALS[10:12], "2598.00", True),
        (wing_admin, CONTOSO_SERIALS[12:13], "1299.00", False),
    ):
        await approve_claim(gql, admin, await claim_sale(gql, user, serials, amount, proof=proof))
    await claim_sale(gql, wing_rep, CONTOSO_SERIALS[3:4], "1299.00")  # Fabrikam's: rejected
    await settle(services)
    clock.advance(-back - timedelta(days=3))
    month = {"month": last_month.isoformat()}
    finance = users["finance@contoso.example"]
    made = (await _ok(gql, STATEMENTS, {"input": month}, finance))["payoutStatementsGenerate"]
    statements = {s["partnerId"]: s for s in made["statements"]}
    paid = statements[graphql_id("Partner", fabrikam.id)]
    for hold in paid["holds"]:  # the incentive rule's (Fabrikam's margin is thin): released
        release = {"holdId": hold["id"], "note": "Reviewed: the margin is fine"}
        await _ok(gql, HOLD_RELEASE, {"input": release}, finance)
    paid = paid["id"]
    step = {"approve": {"statementId": paid}, "paid": {"statementId": paid, "reference": "P-1"}}
    await _ok(gql, STATEMENT_STEP, step, finance)
    held = statements[graphql_id("Partner", wingtip.id)]["id"]
    hold = {"statementId": held, "note": WINGTIP_HOLD_NOTE}
    await _ok(gql, PAYOUT_HOLD, {"input": hold}, finance)
    for user, serials in ((fab_rep, CONTOSO_SERIALS[4:6]), (wing_rep, CONTOSO_SERIALS[13:14])):
        await approve_claim(gql, admin, await claim_sale(gql, user, serials, "2598.00"))
    # Wingtip registers Fabrikam's customer too (a conflict), Fabrikam forecasts its quarter.
    koala = {"name": "Koala Logistics", "domain": "koala-logistics.example", "country": "AU"}
    await submit_deal(gql, wing_rep, clock, customer=koala)
    money = {"amount": "40000.00", "currency": "USD"}
    quarter = now.year * 4 + (now.month - 1) // 3 + 1  # the next one (this one has started)
    forecast = {"quarter": f"{quarter // 4}-Q{quarter % 4 + 1}", "lines": [
        {"productLine": "Other", "commit": money, "bestCase": money}]}  # fmt: skip
    await _ok(gql, FORECAST, {"input": forecast}, fab_admin)
    odd = {"amount": WINGTIP_FORECAST, "currency": "USD"}  # a figure only Wingtip's forecast has
    forecast = {**forecast, "note": WINGTIP_FORECAST_NOTE,
                "lines": [{"productLine": "Other", "commit": odd, "bestCase": odd}]}  # fmt: skip
    await _ok(gql, FORECAST, {"input": forecast}, wing_admin)
    await settle(services)


async def _program_records(
    gql: GQL, services: Services, clock: OffsetClock, vendor: Vendor, users: dict[str, User],
    first: Partner, other: Partner,
) -> None:  # fmt: skip
    """What a vendor's program does to its partners, through the public API, for both of
    its partners: a subscription product sold by each (subscriptions, renewals due, net
    retention; each claim above twice the list price, so risk flags), each partner's
    program tier moved by the vendor (with a reason), its channel manager assigned the
    first partner only, a concentration threshold."""
    admin = users[f"admin@{vendor.slug}.example"]
    sku = f"{vendor.slug.upper()}-CLOUD-12"
    product = {"sku": sku, "name": f"{vendor.name} Cloud Seats", "category": "cloud",
               "listPrice": {"amount": "1000.00", "currency": "USD"},
               "subscriptionTermMonths": 12}  # fmt: skip
    await _ok(gql, PRODUCT, {"input": product}, admin)
    serials = {p.id: [f"{vendor.slug[:3].upper()}-SUB-{p.name[:3].upper()}-{n}" for n in (1, 2)]
               for p in (first, other)}  # fmt: skip
    shipped = (clock.now() - timedelta(days=40)).date().isoformat()
    rows = ["serial,sku,shipped_to,region,shipped_at"] + [
        f"{s},{sku},{p.name},{p.region},{shipped}" for p in (first, other) for s in serials[p.id]
    ]
    imported = await multipart(
        gql, SERIALS_IMPORT, {"input": {"file": None}},
        {"variables.input.file": ("cloud.csv", ("\n".join(rows) + "\n").encode(), "text/csv")},
        token=gql.token(admin),
    )  # fmt: skip
    assert imported.json()["data"]["serialsImport"]["result"]["inserted"] == 4, imported.text
    for partner in (first, other):
        seller = users[f"rep@{partner.name.split()[0].lower()}.example"]
        for serial in serials[partner.id]:
            claim = await claim_sale(gql, seller, [serial], "2500.00")
            if partner is first or serial != serials[partner.id][-1]:  # the last one waits
                await approve_claim(gql, admin, claim)
        tier, reason = TIER_REASONS[partner.name]
        await _ok(gql, TIER_SET, {"input": {"partnerId": graphql_id("Partner", partner.id),
                                            "tier": tier, "reason": reason}}, admin)  # fmt: skip
    if vendor.slug != "northwind":  # the demo assigns Northwind's manager Acme
        manager = users[f"manager@{vendor.slug}.example"]
        assign = {"partnerId": graphql_id("Partner", first.id),
                  "managerId": graphql_id("User", manager.id)}  # fmt: skip
        await _ok(gql, MANAGER_ASSIGN, {"input": assign}, admin)
    threshold = {"metric": "TOP_PARTNER_SHARE", "maxShareBp": 6000,
                 "reason": f"{vendor.name} keeps no partner above 60 %"}  # fmt: skip
    await _ok(gql, THRESHOLD, {"input": threshold}, admin)
    await settle(services)


async def seed_world(gql: GQL, services: Services, settings: Settings, clock: OffsetClock) -> World:
    await seed_demo(settings, clock)
    # Quarters asked about are the forecasts' (the next one: the demo's and Contoso's).
    DEFAULTS["quarter"] = f'"{Quarter.of(clock.now()).next().key}"'
    db = services.db
    async with db.transaction() as session:
        vendors = {v.slug: v for v in (await session.exec(select(Vendor))).all()}
        northwind, contoso = vendors["northwind"], vendors["contoso"]
        users = {u.email: u for u in (await session.exec(select(User))).all()}
        partners = {p.name: p for p in (await session.exec(select(Partner))).all()}
        acme, globex = partners["Acme Resellers"], partners["Globex Systems"]
        fabrikam = partners["Fabrikam Solutions"]
        wingtip = await partners_service.create_partner(
            session, clock, vendor_id=contoso.id, name="Wingtip Traders", region="EMEA",
            internal_notes="Wingtip pays late; keep its discounts tight.",
        )  # fmt: skip
        for email, name, role in CONTOSO_USERS:
            users[email] = await partners_service.create_user(
                session, clock, vendor_id=contoso.id, email=email, role=role,
                display_name=name, partner_id=None if role.is_vendor_staff else wingtip.id,
            )  # fmt: skip
        await catalogue_demo.seed(session, clock, contoso)
        rep = users["rep@fabrikam.example"]
        await submission.submit_registration(
            session, principal_of(rep), clock,
            data=submission.RegistrationInput(
                customer_name="Koala Logistics Pty", customer_domain="koala-logistics.example",
                customer_country="AU", estimated_value_minor=2_500_000, currency="USD",
                expected_close_date=clock.now().date() + timedelta(days=45),
                lines=[submission.LineInput(sku="NW-ROUTER-X1", quantity=3)],
            ),
        )  # fmt: skip
    contoso_tenant = Tenant(vendor=contoso, partners=[fabrikam, wingtip])
    contoso_tenant.users[Role.VENDOR_ADMIN] = users["admin@contoso.example"]
    await create_contest(db, clock, contoso_tenant, name="Fabrikam Outback Cup")
    keys = {
        "key@northwind": await enrich_vendor(gql, services, clock, northwind, [acme, globex]),
        "key@contoso": await enrich_vendor(gql, services, clock, contoso, [fabrikam, wingtip]),
    }
    await _contoso_sales(gql, services, clock, users, fabrikam, wingtip)
    await _program_records(gql, services, clock, northwind, users, acme, globex)
    await _program_records(gql, services, clock, contoso, users, fabrikam, wingtip)

    tokens: dict[str, str | None] = {**keys, ANONYMOUS: None}
    for email in (*NORTHWIND_ROLES, *CONTOSO_ROLES, *OTHER_PARTNER_ROLES):
        if email in users:
            tokens[email] = gql.token(users[email])
    world = World(
        tokens=tokens, secrets={}, own_ids={}, users=users,
        partners={**partners, wingtip.name: wingtip}, vendors=vendors,
    )  # fmt: skip
    await read_secrets(services, world)
    return world


def renew_tokens(gql: GQL, world: World) -> None:
    """Fresh tokens for the users (those issued before the clock moved on have expired)."""
    for email in world.tokens:
        if email in world.users:
            world.tokens[email] = gql.token(world.users[email])


async def read_secrets(services: Services, world: World) -> None:
    """What each caller must never read, from the rows there are now (``world.secrets``),
    and the global ids of its own vendor's rows (``world.own_ids``): read again after a
    test adds records."""
    vendors, partners = world.vendors, world.partners
    northwind, contoso = vendors["northwind"], vendors["contoso"]
    acme, globex = partners["Acme Resellers"], partners["Globex Systems"]
    fabrikam, wingtip = partners["Fabrikam Solutions"], partners["Wingtip Traders"]
    of_contoso = await _vendor_secrets(services, contoso, northwind)
    of_northwind = await _vendor_secrets(services, northwind, contoso)
    secrets = {role: of_contoso for role in NORTHWIND_ROLES}
    secrets |= {role: of_northwind for role in CONTOSO_ROLES}
    for roles, vendor, other, theirs in (
        (ACME_ROLES, northwind, globex, of_contoso),
        (PARTNER_ROLES[2:], contoso, wingtip, of_northwind),
        (OTHER_PARTNER_ROLES[:2], northwind, acme, of_contoso),
        (OTHER_PARTNER_ROLES[2:], contoso, fabrikam, of_northwind),
    ):
        partner_view = theirs.copy()
        await _partner_secrets(services, other, partner_view)
        await _internal_secrets(services, vendor, partner_view)
        secrets |= {role: partner_view for role in roles}
    # The control arm (Acme, Fabrikam) never reads the treatment arm's program.
    async with services.db.session() as session:
        programs = (
            await session.execute(text("SELECT id, name, vendor_id FROM earning_program"))
        ).all()
    for roles, vendor in ((ACME_ROLES, northwind), (PARTNER_ROLES[2:], contoso)):
        trial = [
            (_uuid(i), n) for i, n, v in programs if TRIAL_PROGRAM in n and _uuid(v) == vendor.id
        ]
        for role in roles:
            secrets[role].add_ids(
                [i for i, _ in trial if i], "the treatment arm's program", "earning_program"
            )
            for _, name in trial:
                secrets[role].add_text(name, "the treatment arm's program")
    # What names a pilot's treatment arm (its group, a contest eligible for it, a rule aimed
    # at it) is not the channel managers'; the contest is not the control arm's either.
    arm = await _arm_secrets(services)
    for vendor, roles in ((northwind, ACME_ROLES), (contoso, PARTNER_ROLES[2:])):
        for role in roles:
            table, ids, texts = arm[vendor.id]["a contest on the treatment arm"]
            secrets[role].add_ids(ids, "a contest on the treatment arm", table)
            for value in texts:
                secrets[role].add_text(value, "a contest on the treatment arm")
    # Each channel manager is assigned its vendor's first partner only (Acme: the demo;
    # Fabrikam): the other partner's rows are not its own, but for the registrations in
    # conflict with its partner's, which a reviewer sees as evidence
    # (docs/deal-registration.md: the other registration and partner).
    for manager, (assigned, unassigned, theirs) in {
        "manager@northwind.example": (acme, globex, of_contoso),
        "manager@contoso.example": (fabrikam, wingtip, of_northwind),
    }.items():
        manager_view = theirs.copy()
        await _partner_secrets(services, unassigned, manager_view)
        manager_view.discard(await _conflicting(services, assigned))
        for why, (table, ids, texts) in arm[assigned.vendor_id].items():
            manager_view.add_ids(ids, why, table)
            for value in texts:
                manager_view.add_text(value, why)
        secrets[manager] = manager_view
    # Anonymous: nothing of either vendor.
    anonymous = of_contoso.copy()
    anonymous.ids |= of_northwind.ids
    anonymous.texts |= of_northwind.texts
    for table, ids in of_northwind.by_table.items():
        anonymous.by_table.setdefault(table, []).extend(ids)
    secrets[ANONYMOUS] = anonymous
    types = {**node_types(), **ARGUMENT_ONLY_TYPES}
    own = {ANONYMOUS: {}}
    own |= {role: of_northwind.global_ids(types, 4) for role in NORTHWIND_ROLES}
    own |= {role: of_contoso.global_ids(types, 4) for role in CONTOSO_ROLES}
    own |= {
        role: own[theirs] for role, theirs in zip(OTHER_PARTNER_ROLES, PARTNER_ROLES, strict=True)
    }
    world.secrets, world.own_ids = secrets, own


# --- documents selecting every leaf ---------------------------------------------------

DEFAULTS = {
    "currency": '"USD"',
    "quarter": '"2026-Q4"',
    "sku": '"NW-ROUTER-X1"',
    "serial": '"DEMO-000501"',
    "units": "1",
    "radius": "3",
    "withinDays": "365",
    "from": '"2026-01-01"',
    "to": '"2026-12-31"',
}


def literal(name: str, kind: graphql.GraphQLInputType) -> str | None:
    """A plausible literal for a required argument or input field (None: no idea)."""
    kind = graphql.get_nullable_type(kind)
    if name in DEFAULTS:
        return DEFAULTS[name]
    if isinstance(kind, graphql.GraphQLEnumType):
        return next(iter(kind.values))
    if isinstance(kind, graphql.GraphQLInputObjectType):
        parts = []
        for field_name, f in kind.fields.items():
            if graphql.is_non_null_type(f.type) and f.default_value is graphql.Undefined:
                value = literal(field_name, f.type)
                if value is None:
                    return None
                parts.append(f"{field_name}: {value}")
        return "{" + ", ".join(parts) + "}"
    if isinstance(kind, graphql.GraphQLList):
        return "[]"
    scalar = getattr(kind, "name", "")
    return {
        "String": '"x"',
        "Int": "5",
        "Boolean": "false",
        "MinorUnits": "100000",
        "Score": "1",
        "Date": '"2026-06-01"',
        "DateTime": '"2026-06-01T00:00:00Z"',
    }.get(scalar)


def required_arguments(field_def: graphql.GraphQLField) -> dict[str, graphql.GraphQLArgument]:
    return {
        n: a
        for n, a in field_def.args.items()
        if graphql.is_non_null_type(a.type) and a.default_value is graphql.Undefined
    }


def selection(kind: graphql.GraphQLOutputType, depth: int) -> str:
    named = graphql.get_named_type(kind)
    if isinstance(named, graphql.GraphQLScalarType | graphql.GraphQLEnumType):
        return ""
    if depth == 0:
        return "{ __typename }"
    parts = ["__typename"]
    if isinstance(named, graphql.GraphQLObjectType | graphql.GraphQLInterfaceType):
        for name, f in named.fields.items():
            args = []
            for arg_name, arg in required_arguments(f).items():
                value = literal(arg_name, arg.type)
                if value is None or graphql.get_named_type(arg.type).name == "ID":
                    break
                args.append(f"{arg_name}: {value}")
            else:
                arguments = f"({', '.join(args)})" if args else ""
                parts.append(f"{name}{arguments} {selection(f.type, depth - 1)}")
    if isinstance(named, graphql.GraphQLUnionType):
        for member in named.types:
            parts.append(f"... on {member.name} {selection(member, depth - 1)}")
    return "{ " + " ".join(parts) + " }"


def fits_limits(document: str) -> bool:
    """Within the default document limits (docs/security.md), with a margin."""
    try:
        parsed = graphql.parse(document)
    except graphql.GraphQLError:
        return False
    tokens = 0
    lexer = graphql.language.Lexer(graphql.Source(document))
    while lexer.advance().kind is not graphql.language.TokenKind.EOF:
        tokens += 1
    fields = 0

    class Count(graphql.language.Visitor):
        def enter_field(self, *_: Any) -> None:
            nonlocal fields
            fields += 1

    graphql.language.visit(parsed, Count())
    return tokens < 1900 and fields < 480 and len(document) < 30_000


# --- what tells a partner it sits in a pilot's arm (control or treatment) -------------

# An arm named in words: a treatment arm's partner must not learn it was in one either.
CONTROL_WORD = re.compile(r"\b(control|treatment)\b", re.IGNORECASE)
ARM_KEYS = re.compile(r"control|treatment|pilot|\barm\b", re.IGNORECASE)


def control_leaks(body: Any, sent: str) -> list[str]:
    """What in an answer to a partner role (or anyone outside the vendor's staff) speaks
    of pilot arms: a field about arms, pilots, control or treatment with a value (a count,
    a mean, an arm), the word "control" or "treatment" in any text of the data, or in an
    error's unless the caller's own document said it."""
    found: list[str] = []

    def walk(node: Any, path: str, in_errors: bool) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not in_errors and ARM_KEYS.search(key) and value not in (None, [], {}):
                    found.append(f"{path}.{key} = {json.dumps(value)[:80]}")
                walk(value, f"{path}.{key}", in_errors)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]", in_errors)
        elif isinstance(node, str) and CONTROL_WORD.search(node):
            if not (in_errors and CONTROL_WORD.search(sent)):
                found.append(f"{path}: {node[:120]!r}")

    if isinstance(body, dict):
        walk(body.get("data"), "data", False)
        walk([body.get("errors"), body.get("extensions")], "errors", True)
    return found


# --- what the schema keeps for vendor roles ------------------------------------------

VENDOR_ONLY = re.compile(r"vendor (roles|staff) only|vendor-internal", re.IGNORECASE)


@functools.cache
def _vendor_only() -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """The types and (type, field)s the schema describes as for vendor roles only."""
    schema = _graphql_schema()
    types, fields = set(), set()
    for name, kind in schema.type_map.items():
        if not isinstance(kind, graphql.GraphQLObjectType) or name.startswith("__"):
            continue
        if VENDOR_ONLY.search(kind.description or ""):
            types.add(name)
        for field_name, f in kind.fields.items():
            if VENDOR_ONLY.search(f.description or ""):
                fields.add((name, field_name))
    return frozenset(types), frozenset(fields)


def vendor_only_values(body: Any) -> list[str]:
    """Every value in an answer's data that the schema keeps for vendor roles (a field
    described "Vendor roles only", or an object of such a type): none may reach a partner
    role or anonymous, not even a count or a zero."""
    types, fields = _vendor_only()
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            typename = node.get("__typename")
            if typename in types:
                found.append(f"{path}: a {typename}")
                return
            for key, value in node.items():
                if (typename, key) in fields and value is not None:
                    found.append(f"{path}.{key} = {json.dumps(value)[:80]}")
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    if isinstance(body, dict):
        walk(body.get("data"), "data")
    return found
