"""What a rule does when it fires: the actions, their validation, and applying them.

Every action is placed through the service of the domain that owns its effect: a group
window through ``partners.groups``, a rate overlay through ``earnings.overlays`` (so that
crediting pays it and the entry names it), a payout review through ``earnings.reviews``;
a recommendation is this domain's own row, and vendor staff are told through the
``RuleFired`` outbox event. Each application returns an outcome (what was placed, until
when, the estimated cost) that the firing keeps."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from earnings import overlays, programs, reviews
from earnings.errors import EarningsErrorCode
from earnings.models import Program, ProgramKind, RateOverlay
from earnings.rounding import apply_bp
from incentives.errors import RuleErrorCode
from incentives.models import RuleRecommendation
from infra.clock import Clock
from infra.errors import DomainError, DomainErrors
from infra.text import free_text_problem, identifier_problem, name_problem
from partners import groups
from partners.group_models import PartnerGroup

SOURCE = "incentive_rule"  # what earnings records as the source of overlays and reviews
MAX_DAYS = 366


class ActionKind(StrEnum):
    GROUP_WINDOW = "GROUP_WINDOW"  # into a group (a promotion tier) for a window
    RATE_OVERLAY = "RATE_OVERLAY"  # +/- basis points on a program for a window
    PAYOUT_HOLD = "PAYOUT_HOLD"  # hold payouts for review, with the partner's reason
    RECOMMEND = "RECOMMEND"  # recommend an action to the partner
    NOTIFY_STAFF = "NOTIFY_STAFF"  # tell vendor staff (the RuleFired event)


# Actions a partner sees the effect of (and so reads an explanation of).
PARTNER_VISIBLE = frozenset(
    {ActionKind.GROUP_WINDOW, ActionKind.RATE_OVERLAY, ActionKind.PAYOUT_HOLD,
     ActionKind.RECOMMEND}
)  # fmt: skip
RATE_ACTIONS = frozenset({ActionKind.RATE_OVERLAY})


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    days: int = 30
    group_id: uuid.UUID | None = None
    program_id: uuid.UUID | None = None
    delta_bp: int = 0
    partner_reason: str = ""
    title: str = ""
    text: str = ""
    link: str | None = None
    code: str | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind.value, "days": self.days}
        if self.group_id:
            data["group_id"] = str(self.group_id)
        if self.program_id:
            data["program_id"] = str(self.program_id)
        if self.delta_bp:
            data["delta_bp"] = self.delta_bp
        for name in ("partner_reason", "title", "text", "message"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        if self.link:
            data["link"] = self.link
        if self.code:
            data["code"] = self.code
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Action:
        return cls(
            kind=ActionKind(data["kind"]),
            days=int(data.get("days", 30)),
            group_id=uuid.UUID(data["group_id"]) if data.get("group_id") else None,
            program_id=uuid.UUID(data["program_id"]) if data.get("program_id") else None,
            delta_bp=int(data.get("delta_bp", 0)),
            partner_reason=str(data.get("partner_reason", "")),
            title=str(data.get("title", "")),
            text=str(data.get("text", "")),
            link=data.get("link"),
            code=data.get("code"),
            message=str(data.get("message", "")),
        )


async def validate(
    session: AsyncSession,
    vendor_id: uuid.UUID,
    actions: Sequence[Action],
    currency: str,
    field: str = "actions",
) -> list[Action]:
    """Check every action (its group or program is the vendor's and not a pilot's arm, an
    overlay's program pays in the rule's ``currency``, its window, its words); raise every
    problem at once."""
    if not actions:
        raise DomainError(RuleErrorCode.NO_ACTIONS, "Give the rule at least one action.", field)
    errors: list[DomainError] = []

    def bad(code: RuleErrorCode, message: str, path: str) -> None:
        errors.append(DomainError(code, message, path))

    out: list[Action] = []
    for i, action in enumerate(actions):
        path = f"{field}.{i}"
        if not 1 <= action.days <= MAX_DAYS:
            bad(RuleErrorCode.INVALID_WINDOW, f"A window of 1 to {MAX_DAYS} days.", f"{path}.days")
        match action.kind:
            case ActionKind.GROUP_WINDOW:
                group = (
                    await session.get(PartnerGroup, action.group_id) if action.group_id else None
                )
                if group is None or group.vendor_id != vendor_id or group.archived_at is not None:
                    bad(RuleErrorCode.NOT_FOUND, "No such group.", f"{path}.group_id")
                elif group.managed_by is not None:
                    # A pilot's treatment arm: a window would put control partners in it.
                    bad(RuleErrorCode.MANAGED_GROUP, f"This group is managed by a "
                        f"{group.managed_by}; a rule does not place partners in it.",
                        f"{path}.group_id")  # fmt: skip
            case ActionKind.RATE_OVERLAY:
                program = (
                    await session.get(Program, action.program_id) if action.program_id else None
                )
                if program is None or program.vendor_id != vendor_id:
                    bad(RuleErrorCode.NOT_FOUND, "No such program.", f"{path}.program_id")
                elif program.currency != currency:
                    # The budget counts the rule's currency only.
                    bad(RuleErrorCode.CURRENCY_MISMATCH, f"The program pays in "
                        f"{program.currency}; the rule's budget is in {currency}.",
                        f"{path}.program_id")  # fmt: skip
                try:
                    overlays.check_delta(action.delta_bp, f"{path}.delta_bp")
                except DomainError as error:
                    code = (
                        RuleErrorCode.OVERLAY_BEYOND_CAP
                        if error.code == EarningsErrorCode.OVERLAY_BEYOND_CAP
                        else RuleErrorCode.INVALID_ACTION
                    )
                    bad(code, error.message, f"{path}.delta_bp")
            case ActionKind.PAYOUT_HOLD:
                if not action.partner_reason.strip():
                    bad(RuleErrorCode.REQUIRED, "Say why, in words the partner reads.",
                        f"{path}.partner_reason")  # fmt: skip
                elif len(action.partner_reason) > 500:
                    bad(RuleErrorCode.TOO_LONG, "At most 500 characters.", f"{path}.partner_reason")
                elif problem := free_text_problem(action.partner_reason):
                    bad(RuleErrorCode.INVALID_CHARACTERS, problem, f"{path}.partner_reason")
            case ActionKind.RECOMMEND:
                if not action.title.strip() or not action.text.strip():
                    bad(RuleErrorCode.REQUIRED, "A recommendation has a title and a text.",
                        f"{path}.title")  # fmt: skip
                elif len(action.title) > 200 or len(action.text) > 2000:
                    bad(RuleErrorCode.TOO_LONG, "A title of at most 200 characters, a text of "
                        "at most 2000.", f"{path}.text")  # fmt: skip
                elif problem := name_problem(action.title.strip()):
                    bad(RuleErrorCode.INVALID_CHARACTERS, problem, f"{path}.title")
                elif problem := free_text_problem(action.text):
                    bad(RuleErrorCode.INVALID_CHARACTERS, problem, f"{path}.text")
                if action.link and (problem := identifier_problem(action.link.strip())):
                    bad(RuleErrorCode.INVALID_CHARACTERS, problem, f"{path}.link")
                elif action.link and not safe_link(action.link):
                    bad(RuleErrorCode.INVALID_ACTION, "A link is an http(s) URL with a host, "
                        "or a path in the app (starting with a single /).",
                        f"{path}.link")  # fmt: skip
                if (action.link and len(action.link) > 500) or (
                    action.code and len(action.code) > 100
                ):
                    bad(RuleErrorCode.TOO_LONG, "A link of at most 500 characters, a code of "
                        "at most 100.", f"{path}.link")  # fmt: skip
                if action.code and (problem := identifier_problem(action.code.strip())):
                    bad(RuleErrorCode.INVALID_CHARACTERS, problem, f"{path}.code")
            case ActionKind.NOTIFY_STAFF:
                if len(action.message) > 500:
                    bad(RuleErrorCode.TOO_LONG, "At most 500 characters.", f"{path}.message")
                elif problem := free_text_problem(action.message):
                    bad(RuleErrorCode.INVALID_CHARACTERS, problem, f"{path}.message")
        out.append(action)
    if errors:
        raise DomainErrors(errors)
    return out


def safe_link(link: str) -> bool:
    """An http(s) URL with a host, or a path in the app. A browser reads "//host" and
    "/\\host" as another site, and control characters or spaces may split a header or a
    message a link is written into."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in link) or "\\" in link:
        return False
    if link.startswith(("https://", "http://")):
        return bool(urlsplit(link).hostname)
    return link.startswith("/") and not link.startswith("//")


# ------------------------------------------------------------------------------ estimates


async def group_programs(
    session: AsyncSession, vendor_id: uuid.UUID, group_id: uuid.UUID, at: datetime
) -> list[tuple[Program, int]]:
    """The BONUS programs targeting the group and their default rate at ``at`` (what being
    in the group pays on top)."""
    found = []
    for program in await programs.vendor_programs(session, vendor_id):
        if program.kind is not ProgramKind.BONUS or str(group_id) not in program.target_group_ids:
            continue
        version = programs.version_in_force(await programs.versions_of(session, program.id), at)
        if version is None:
            continue
        rate = programs.Rules.from_json(version.rules).base_rate_for("", "")
        if rate is not None and rate.rate_bp:
            found.append((program, rate.rate_bp))
    return found


def projected_revenue(values: Mapping[str, Any], days: int) -> int:
    """The revenue a window of ``days`` is expected to bring: the trailing 30 days' pace."""
    revenue = values.get("revenue_30d")
    if not isinstance(revenue, int) or isinstance(revenue, bool) or revenue <= 0:
        return 0
    return revenue * days // 30


@dataclass
class Budget:
    """What the rule may still spend on rate actions in this run (None: no cap): what it
    had left when the run began, less each rate action's estimated cost placed since;
    ``spent_minor``: those costs (added to the rule's ``budget_committed_minor``)."""

    left_minor: int | None
    currency: str  # the rule's: what its costs are counted in
    spent_minor: int = 0

    @property
    def reached(self) -> bool:
        return self.left_minor is not None and self.left_minor <= 0

    def spend(self, amount_minor: int) -> None:
        self.spent_minor += amount_minor
        if self.left_minor is not None:
            self.left_minor -= amount_minor

    def try_spend(self, amount_minor: int) -> bool:
        """Spend a cost unless the budget is already reached (what costs nothing goes)."""
        if amount_minor and self.reached:
            return False
        self.spend(amount_minor)
        return True


def budget_left(cap_minor: int | None, committed_minor: int, paid_minor: int) -> int | None:
    """What a rule may still commit: its cap less the larger of what its rate actions have
    committed (their estimated costs) and what its overlays have paid (None: no cap)."""
    if cap_minor is None:
        return None
    return cap_minor - max(committed_minor, paid_minor)


@dataclass
class Context:
    """What applying (or estimating) a rule's actions needs besides the action."""

    session: AsyncSession
    clock: Clock
    vendor_id: uuid.UUID
    rule_id: uuid.UUID
    rule_name: str
    firing_id: uuid.UUID
    partner_id: uuid.UUID
    values: Mapping[str, Any]
    budget: Budget
    group_rates: dict[uuid.UUID, list[tuple[Program, int]]]
    # Rows that name the firing, added once the firing is written.
    pending: list[RuleRecommendation] = field(default_factory=list)
    # The groups and programs actions name, read once per run (the identity map is weak).
    rows: dict[uuid.UUID, Any] = field(default_factory=dict)
    # Statements not yet paid, by partner, read at once for a run's payout holds.
    open_statements: dict[uuid.UUID, list[Any]] | None = None
    # The overlays running now by (partner, program), read at once for a run.
    live: dict[tuple[uuid.UUID, uuid.UUID], list[RateOverlay]] = field(default_factory=dict)

    async def group(self, group_id: uuid.UUID) -> PartnerGroup:
        if group_id not in self.rows:
            self.rows[group_id] = await self.session.get(PartnerGroup, group_id)
        found = self.rows[group_id]
        if found is None or found.vendor_id != self.vendor_id:
            raise DomainError(RuleErrorCode.NOT_FOUND, "No such group.", "group_id")
        return found  # type: ignore[no-any-return]

    async def program(self, program_id: uuid.UUID) -> Program:
        if program_id not in self.rows:
            self.rows[program_id] = await self.session.get(Program, program_id)
        found = self.rows[program_id]
        if found is None or found.vendor_id != self.vendor_id:
            raise DomainError(RuleErrorCode.NOT_FOUND, "No such program.", "program_id")
        return found  # type: ignore[no-any-return]


async def estimate(ctx: Context, action: Action) -> int:
    """The estimated incentive cost of the action over its window (minor units)."""
    revenue = projected_revenue(ctx.values, action.days)
    if action.kind is ActionKind.RATE_OVERLAY:
        return apply_bp(revenue, action.delta_bp)
    if action.kind is ActionKind.GROUP_WINDOW and action.group_id is not None:
        # What the group's programs pay in the rule's currency (the budget's): a program
        # paying in another is no cost the rule's budget could hold.
        rates = await _rates(ctx, action.group_id)
        return sum(apply_bp(revenue, bp) for p, bp in rates if p.currency == ctx.budget.currency)
    return 0


async def _rates(ctx: Context, group_id: uuid.UUID) -> list[tuple[Program, int]]:
    if group_id not in ctx.group_rates:
        ctx.group_rates[group_id] = await group_programs(
            ctx.session, ctx.vendor_id, group_id, ctx.clock.now()
        )
    return ctx.group_rates[group_id]


async def closed_group(ctx: Context, action: Action) -> str | None:
    """Why a group window cannot be opened now, though the group was fine when the rule
    was written: it was archived since (GROUP_ARCHIVED), or a pilot took it over as its
    treatment arm (GROUP_MANAGED). The rule's other actions still apply."""
    if action.kind is not ActionKind.GROUP_WINDOW or action.group_id is None:
        return None
    group = await ctx.group(action.group_id)
    if group.archived_at is not None:
        return "GROUP_ARCHIVED"
    if group.managed_by is not None:
        return "GROUP_MANAGED"
    return None


async def apply(ctx: Context, action: Action) -> dict[str, Any]:
    """Place the action's effect; the outcome the firing records."""
    now = ctx.clock.now()
    until = now + timedelta(days=action.days)
    outcome: dict[str, Any] = {"kind": action.kind.value, "until": until.isoformat()}
    if closed := await closed_group(ctx, action):
        return outcome | {"skipped": closed, "estimated_cost_minor": 0}
    outcome["estimated_cost_minor"] = await estimate(ctx, action)
    by = f"rule:{ctx.rule_id}"
    match action.kind:
        case ActionKind.GROUP_WINDOW:
            assert action.group_id is not None
            group = await ctx.group(action.group_id)
            if not ctx.budget.try_spend(int(outcome["estimated_cost_minor"])):
                # A window into a group its programs pay for spends the budget as an
                # overlay does: the cap stops it too.
                return outcome | {"skipped": "BUDGET_REACHED", "estimated_cost_minor": 0}
            window = await groups.open_window(
                ctx.session, ctx.clock, group=group, partner_id=ctx.partner_id, until=until,
                reason=f"Rule {ctx.rule_name}", by=by,
            )  # fmt: skip
            outcome |= {
                "membership_id": str(window.id), "group_id": str(action.group_id),
                "group_name": group.name,
                "programs": [
                    {"name": p.name, "rate_bp": bp} for p, bp in await _rates(ctx, action.group_id)
                ],
            }  # fmt: skip
        case ActionKind.RATE_OVERLAY:
            assert action.program_id is not None
            if ctx.budget.reached:
                outcome["skipped"] = "BUDGET_REACHED"
                outcome["estimated_cost_minor"] = 0
                return outcome
            program = await ctx.program(action.program_id)
            overlay, placed, before = await overlays.place_overlay(
                ctx.session, ctx.clock, program=program, partner_id=ctx.partner_id,
                delta_bp=action.delta_bp, ends_at=until, source=SOURCE, source_id=ctx.rule_id,
                label=ctx.rule_name,
                live=ctx.live.setdefault((ctx.partner_id, program.id), []),
            )  # fmt: skip
            if overlay is None or placed is overlays.Placed.ALREADY_LIVE:
                # Never a second overlay from the rule, never past the cap in total.
                outcome["skipped"] = placed.value
                outcome["estimated_cost_minor"] = 0
                return outcome
            if before is not None:  # extended: the cost of the added days only
                added = max(0, (until - max(before, now)).days)
                outcome["estimated_cost_minor"] = apply_bp(
                    projected_revenue(ctx.values, added), action.delta_bp
                )
                outcome["extended"] = True
                outcome["before"] = before.isoformat()  # the end a rollback restores
            ctx.budget.spend(int(outcome["estimated_cost_minor"]))
            outcome |= {
                "overlay_id": str(overlay.id), "program_id": str(action.program_id),
                "program_name": program.name, "delta_bp": action.delta_bp,
            }  # fmt: skip
        case ActionKind.PAYOUT_HOLD:
            review, held = await reviews.place_review(
                ctx.session, ctx.clock, vendor_id=ctx.vendor_id, partner_id=ctx.partner_id,
                partner_note=action.partner_reason,
                internal_note=f"Rule {ctx.rule_name} fired (firing {ctx.firing_id}).",
                ends_at=until, source=SOURCE, source_id=ctx.rule_id,
                open_statements=None if ctx.open_statements is None
                else ctx.open_statements.get(ctx.partner_id, []),
            )  # fmt: skip
            outcome |= {
                "review_id": str(review.id), "statements_held": held,
                "partner_reason": action.partner_reason,
            }  # fmt: skip
        case ActionKind.RECOMMEND:
            recommendation = RuleRecommendation(
                vendor_id=ctx.vendor_id, partner_id=ctx.partner_id, firing_id=ctx.firing_id,
                title=action.title, text=action.text, link=action.link, code=action.code,
                created_at=now, expires_at=until,
            )  # fmt: skip
            ctx.pending.append(recommendation)
            outcome |= {"recommendation_id": str(recommendation.id), "title": action.title}
        case ActionKind.NOTIFY_STAFF:
            outcome |= {"message": action.message}
    return outcome


def overlay_ids(outcomes: Sequence[Mapping[str, Any]]) -> list[uuid.UUID]:
    """The rate overlays these outcomes placed (or extended)."""
    return sorted({uuid.UUID(o["overlay_id"]) for o in outcomes if o.get("overlay_id")})


def overlay_windows(outcomes: Sequence[Mapping[str, Any]]) -> dict[uuid.UUID, datetime | None]:
    """What of each overlay these outcomes own: None, the whole overlay (one of them added
    it, or an extension recorded before ``before`` was kept); else the time from which
    they extended it (the earliest end an extension replaced: an earlier version's, since
    every version of a rule places under the rule's source)."""
    out: dict[uuid.UUID, datetime | None] = {}
    for outcome in outcomes:
        if not outcome.get("overlay_id"):
            continue
        overlay_id = uuid.UUID(outcome["overlay_id"])
        before = outcome.get("before") if outcome.get("extended") else None
        since = datetime.fromisoformat(before) if before else None
        if since is None or (overlay_id in out and out[overlay_id] is None):
            out[overlay_id] = None
        else:
            known = out.get(overlay_id, since)
            out[overlay_id] = min(since, known) if known is not None else None
    return out


async def undo(
    session: AsyncSession,
    clock: Clock,
    outcomes: Sequence[Mapping[str, Any]],
    *,
    restore_extended: bool = False,
) -> dict[uuid.UUID, datetime]:
    """End now what these outcomes placed and is still running (a rule change): group
    windows, overlays, reviews (holds already placed stay for finance), recommendations.
    With ``restore_extended`` (a rollback to the version before), an overlay they only
    extended goes back to the end it had instead. Returns, per effect changed (its
    membership, overlay, review or recommendation id), the end it has now: now when it
    ended, a later time when an extension was withdrawn."""

    def ids(key: str) -> list[uuid.UUID]:
        return [uuid.UUID(o[key]) for o in outcomes if o.get(key)]

    now = clock.now()
    ended: dict[uuid.UUID, datetime] = {}
    # Every firing the version ever made: a long-lived rule's run past the drivers' limit
    # on bound parameters (32,767 on asyncpg; SQLite's default is 32,766) in one IN list,
    # so the ids go CHUNK at a time. The overlays' windows are worked out over all first.
    for chunk in _chunks(ids("membership_id")):
        for window in await groups.close_windows(
            session, clock, membership_ids=chunk, reason="rule rolled back", by="incentives"
        ):
            ended[window.id] = now
    windows = overlay_windows(outcomes)
    if not restore_extended:
        windows = dict.fromkeys(windows)
    for chunk in _chunks([o for o, since in windows.items() if since is None]):
        for overlay in await overlays.end_overlays(session, clock, overlay_ids=chunk):
            ended[overlay.id] = now
    for items in _chunks([(o, since) for o, since in windows.items() if since is not None]):
        for overlay in await overlays.shorten_overlays(session, clock, ends=dict(items)):
            ended[overlay.id] = now if overlay.ended_at is not None else overlay.ends_at
    for chunk in _chunks(ids("review_id")):
        for review in await reviews.end_reviews(session, clock, review_ids=chunk):
            ended[review.id] = now
    for chunk in _chunks(ids("recommendation_id")):
        rows = await session.exec(
            select(RuleRecommendation).where(
                col(RuleRecommendation.id).in_(chunk),
                col(RuleRecommendation.withdrawn_at).is_(None),
                col(RuleRecommendation.expires_at) > now,
            )
        )
        for recommendation in rows:
            recommendation.withdrawn_at = now
            session.add(recommendation)
            ended[recommendation.id] = now
    await session.flush()
    return ended


CHUNK = 5_000  # ids in one IN list
T = TypeVar("T")


def _chunks(items: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


EFFECT_KEYS = ("membership_id", "overlay_id", "review_id", "recommendation_id")


def effect_id(outcome: Mapping[str, Any]) -> str | None:
    """The id of what the outcome placed (a membership, an overlay, a review or a
    recommendation); None when it placed nothing."""
    for key in EFFECT_KEYS:
        if outcome.get(key):
            return str(outcome[key])
    return None
