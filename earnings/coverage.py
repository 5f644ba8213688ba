"""Whether a sale earns anything: which programs cover its currency and products.

A sale in a currency no program pays in, or of a product no base rate reaches, is credited
as revenue but earns nothing. That is never silent: the reviewer approving the claim is
warned, and the partner's explanation says why (plain words, no vendor-only figures).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from catalogue.repository import products_by_sku
from deal_registration.events import SaleApproved
from earnings import programs
from earnings.models import Program, ProgramVersion
from partners.groups import groups_of


@dataclass(frozen=True)
class Gap:
    """What of a sale no program covers: the whole currency (``no_program``), or the SKUs
    no base rate reaches ("" is a sale without product lines)."""

    currency: str
    no_program: bool
    skus: tuple[str, ...] = ()

    def reason(self) -> str:
        """'no program pays on sales in EUR' / 'no program pays on NW-X or NW-Y'."""
        if self.no_program:
            return f"no program pays on sales in {self.currency}"
        named = [sku for sku in self.skus if sku]
        if not named:
            return f"no program in {self.currency} pays on a sale without products"
        return "no program pays on " + " or ".join(named)


class Coverage:
    """Answers ``gap(...)`` for one vendor, reading each currency's programs and each
    product once (a summary asks about many sales)."""

    def __init__(self, session: AsyncSession, vendor_id: uuid.UUID) -> None:
        self._session = session
        self._vendor_id = vendor_id
        self._versions: dict[str, list[tuple[Program, list[ProgramVersion]]]] = {}
        self._categories: dict[str, str] = {}

    async def gap(
        self, currency: str, at: datetime, skus: Sequence[str], partner_id: uuid.UUID
    ) -> Gap | None:
        """What no program in force at ``at`` for the partner (by its groups then) covers of
        a sale of ``skus`` (none: a sale without product lines) in ``currency``; None when
        every line earns a base rate."""
        if currency not in self._versions:
            found = await programs.vendor_programs(self._session, self._vendor_id, currency)
            self._versions[currency] = [
                (p, await programs.versions_of(self._session, p.id)) for p in found
            ]
        groups: set[uuid.UUID] | None = None
        in_force = []
        for program, versions in self._versions[currency]:
            if program.target_group_ids:
                if groups is None:
                    groups = await groups_of(self._session, self._vendor_id, partner_id, at)
                if not programs.applies_to(program, groups):
                    continue
            in_force.append(programs.version_in_force(versions, at))
        rules = [programs.Rules.from_json(v.rules) for v in in_force if v is not None]
        if not rules:
            return Gap(currency, no_program=True)
        wanted = list(dict.fromkeys(skus)) or [""]
        unknown = [s for s in wanted if s and s not in self._categories]
        if unknown:
            products = await products_by_sku(self._session, self._vendor_id, unknown)
            self._categories.update({s: "" for s in unknown})
            self._categories.update({sku: p.category for sku, p in products.items()})
        uncovered = tuple(
            sku
            for sku in wanted
            if all(r.base_rate_for(sku, self._categories.get(sku, "")) is None for r in rules)
        )
        return Gap(currency, no_program=False, skus=uncovered) if uncovered else None


async def sale_gap(session: AsyncSession, vendor_id: uuid.UUID, sale: SaleApproved) -> Gap | None:
    """What of an approved sale no program covers, judged as the ledger will credit it (at
    the sale's instant, else its approval)."""
    at = sale.sold_at or sale.approved_at
    assert at is not None, "an approved sale has its instant"
    return await Coverage(session, vendor_id).gap(
        sale.currency, at, [line.sku for line in sale.lines], sale.partner_id
    )
