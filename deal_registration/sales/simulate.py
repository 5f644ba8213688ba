"""A stream of realistic demo sales for `channelboard simulate`.

Each sale is a real sale claim, made the way ``saleClaimCreate`` makes it
(``submission.create_claim``) by one of the demo partners' users, on serials of a demo SKU
shipped to that partner, with a customer, an invoice number, today's date, an amount near
list price x units and a PDF invoice as proof. The vendor's rules then auto-approve it, or
the demo vendor admin approves it through the review service (``review.approve``), as
``saleClaimApprove`` would. The claim, its decision records, its ``SaleApproved`` event and
everything the outbox handlers derive from it (earnings, contest credits, notices) are
therefore exactly what the API produces.

Serials come from the shipment registry's own import (``serials.import_serials``): the
simulator ships a block of fresh serials to a partner whenever it has used up the last
block of that partner and SKU. Serials are ``SIM-<run>-<n>`` with a fixed-width run id
and number (``SIM<run><n>`` once normalised, so no two can collide); a block that meets a
serial the registry already holds is abandoned for a new run id, so a serial is never used
twice, however long or often the simulator runs.
"""

from __future__ import annotations

import io
import random
import secrets
import uuid
from collections import deque
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from catalogue.models import Product
from deal_registration.attachments import ProofFile
from deal_registration.sales import review, serials, submission
from deal_registration.sales.models import CREDITED_STATES, OPEN_STATES, SaleClaim
from deal_registration.storage import Storage
from infra.clock import Clock, FrozenClock
from infra.db import Database
from infra.outages import is_unavailable
from partners.demo import VENDOR_SLUG
from partners.models import Partner, PartnerStatus, User, Vendor
from partners.roles import Principal, Role

VENDOR_ADMIN = "admin@northwind.example"
# Who sells, and how often: reps close most deals, the bigger (PREMIER) partner sells more.
SELLERS = (
    ("rep@acme.example", 5),
    ("admin@acme.example", 2),
    ("rep@globex.example", 4),
    ("admin@globex.example", 1),
)
# What sells: access points and routers often, firewalls rarely (other SKUs: weight 1).
SKU_WEIGHTS = {"NW-AP-6E": 5, "NW-ROUTER-X1": 4, "NW-CARE-3Y": 3, "NW-SWITCH-48": 2, "NW-FW-500": 1}
UNITS = ((1, 8), (2, 4), (3, 3), (4, 2), (5, 2), (10, 1))
CUSTOMERS = (
    "Contoso Ltd", "Fabrikam Inc", "Tailspin Toys", "Wingtip Toys", "Litware Inc",
    "Adventure Works", "Woodgrove Bank", "Proseware Inc", "Fourth Coffee", "Alpine Ski House",
    "Coho Winery", "Trey Research", "Lucerne Publishing", "Margie's Travel", "Humongous Insurance",
)  # fmt: skip
DISCOUNT = (0.85, 1.0)  # the sale price: list price less a typical reseller discount
BLOCK = 50  # serials shipped to a partner at a time, per SKU
SHIPPED_DAYS_AGO = 3
NUMBER_WIDTH = 6  # SIM-<run>-<n:06d>; a new run id when a run has used them all


class NoDemoData(Exception):
    """The database has no demo vendor, users or products to simulate with."""


@dataclass(frozen=True)
class SimulatedSale:
    claim: SaleClaim
    seller: str
    partner: str
    sku: str
    units: int
    auto_approved: bool

    def describe(self) -> str:
        amount = f"{self.claim.amount_minor / 100:,.2f} {self.claim.currency}"
        how = "auto-approved" if self.auto_approved else "approved"
        return f"{self.seller}, {self.units} x {self.sku}, {amount}, {how}"


@dataclass(frozen=True)
class _Claimed:
    claim: SaleClaim
    seller: Principal
    partner: Partner
    sku: str
    units: int
    serial_numbers: list[str]


def _principal(user: User) -> Principal:
    return Principal(
        vendor_id=user.vendor_id, role=user.role, user_id=user.id, partner_id=user.partner_id,
        email=user.email,
    )  # fmt: skip


def new_run_id() -> str:
    """Eight characters of letters and digits (a fixed width: see the module doc)."""
    return secrets.token_hex(4).upper()


class Simulator:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        storage: Storage,
        *,
        rng: random.Random | None = None,
        run: str | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.storage = storage
        self.rng = rng or random.Random()
        self.run = run or new_run_id()
        self.next_number = 1
        self.sales = 0
        self.vendor: Vendor | None = None
        self.admin: Principal | None = None
        self.sellers: list[tuple[Principal, Partner, int]] = []
        self.products: list[tuple[Product, int]] = []
        self._unused: dict[tuple[uuid.UUID, str], deque[str]] = {}
        self._claimed: _Claimed | None = None  # made, not yet seen approved

    @property
    def partner_names(self) -> list[str]:
        return sorted({partner.name for _, partner, _ in self.sellers})

    async def load(self) -> None:
        """Read the demo vendor, its users and products (raises NoDemoData without them)."""
        hint = "run 'channelboard demo' first"
        try:
            async with self.db.session() as session:
                vendor = (
                    await session.exec(select(Vendor).where(Vendor.slug == VENDOR_SLUG))
                ).first()
                if vendor is None:
                    raise NoDemoData(f"no demo data: {hint}")
                emails = [VENDOR_ADMIN, *(email for email, _ in SELLERS)]
                users = {
                    u.email: u
                    for u in await session.exec(
                        select(User).where(
                            User.vendor_id == vendor.id,
                            col(User.email).in_(emails),
                            col(User.active).is_(True),
                        )
                    )
                }
                partners = {
                    p.id: p
                    for p in await session.exec(
                        select(Partner).where(
                            Partner.vendor_id == vendor.id, Partner.status == PartnerStatus.ACTIVE
                        )
                    )
                }
                products = list(
                    await session.exec(
                        select(Product)
                        .where(Product.vendor_id == vendor.id, col(Product.active).is_(True))
                        .order_by(col(Product.sku))
                    )
                )
        except DBAPIError as exc:  # no tables yet (an outage is waited out by the caller)
            if is_unavailable(exc):
                raise
            raise NoDemoData(f"no demo data (is the database migrated?): {hint}") from exc
        admin = users.get(VENDOR_ADMIN)
        if admin is None or admin.role is not Role.VENDOR_ADMIN:
            raise NoDemoData(f"no demo vendor admin ({VENDOR_ADMIN}): {hint}")
        for email, weight in SELLERS:
            user = users.get(email)
            if user is not None and user.partner_id in partners:
                self.sellers.append((_principal(user), partners[user.partner_id], weight))
        if not self.sellers:
            raise NoDemoData(f"no active demo partner users: {hint}")
        self.products = [(p, SKU_WEIGHTS.get(p.sku, 1)) for p in products]
        if not self.products:
            raise NoDemoData(f"no demo products: {hint}")
        self.vendor = vendor
        self.admin = _principal(admin)

    async def one(self) -> SimulatedSale:
        """Claim one sale and see it approved; returns the approved claim. Safe to call
        again after it failed (Redis or the database out of reach): a claim already made
        is carried on with (approved), not left open beside a new one."""
        if self._claimed is None:
            self._claimed = await self._claim()
        else:  # the last call failed: its approval may have committed all the same
            self._claimed = await self._read_again(self._claimed)
        sale = await self._see_approved(self._claimed)
        self._claimed = None
        return sale

    async def _claim(self) -> _Claimed:
        assert self.admin is not None, "load() first"
        rng = self.rng
        seller, partner = rng.choices(
            [(u, p) for u, p, _ in self.sellers], [w for *_, w in self.sellers]
        )[0]
        product = rng.choices([p for p, _ in self.products], [w for _, w in self.products])[0]
        units = rng.choices([u for u, _ in UNITS], [w for _, w in UNITS])[0]
        serial_numbers = await self._take_serials(partner, product.sku, units)
        price = product.list_price_minor * units * rng.uniform(*DISCOUNT)
        amount_minor = max(100, round(price / 100) * 100)  # whole currency units
        self.sales += 1
        invoice = f"SIM-{self.run}-{self.sales:0{NUMBER_WIDTH}d}"
        customer = rng.choice(CUSTOMERS)
        now = self.clock.now()
        async with self.db.transaction() as session:
            claim = await submission.create_claim(
                session, seller, self.clock, self.storage, serial_numbers=serial_numbers,
                customer_name=customer, invoice_number=invoice, sale_date=now.date(),
                amount_minor=amount_minor, currency=product.currency,
                proof_files=[_invoice_pdf(invoice, customer, product, units, amount_minor)],
            )  # fmt: skip
        return _Claimed(claim, seller, partner, product.sku, units, serial_numbers)

    async def _read_again(self, claimed: _Claimed) -> _Claimed:
        async with self.db.session() as session:
            claim = await session.get(SaleClaim, claimed.claim.id)
        assert claim is not None, "a claim this simulator made"
        return replace(claimed, claim=claim)

    async def _see_approved(self, claimed: _Claimed) -> SimulatedSale:
        assert self.admin is not None, "load() first"
        claim = claimed.claim
        auto_approved = claim.state in CREDITED_STATES
        if claim.state in OPEN_STATES:
            # Over the auto-approve limit, or flagged (e.g. a burst of claims): reviewed.
            async with self.db.transaction() as session:
                claim = await review.approve(
                    session, self.admin, self.clock, claim_id=claim.id,
                    note="Checked against the invoice (channelboard simulate).",
                )  # fmt: skip
        if claim.state not in CREDITED_STATES:
            raise RuntimeError(
                f"simulated claim {claim.id} ended {claim.state.value}, not approved "
                f"(serials {', '.join(claimed.serial_numbers)})"
            )
        return SimulatedSale(
            claim=claim, seller=claimed.seller.email or "", partner=claimed.partner.name,
            sku=claimed.sku, units=claimed.units, auto_approved=auto_approved,
        )  # fmt: skip

    async def _take_serials(self, partner: Partner, sku: str, units: int) -> list[str]:
        pool = self._unused.setdefault((partner.id, sku), deque())
        while len(pool) < units:
            pool.extend(await self._ship(partner, sku, max(BLOCK, units)))
        return [pool.popleft() for _ in range(units)]

    async def _ship(self, partner: Partner, sku: str, count: int) -> list[str]:
        """Register ``count`` fresh serials of ``sku`` shipped to ``partner`` through the
        registry import, as the vendor's shipment feed would have a few days ago (a serial
        claimed within a day of its import is a risk flag). Returns them, normalised."""
        assert self.admin is not None
        while True:
            if self.next_number + count > 10**NUMBER_WIDTH:
                self.run, self.next_number = new_run_id(), 1
            first = self.next_number
            raw = [f"SIM-{self.run}-{n:0{NUMBER_WIDTH}d}" for n in range(first, first + count)]
            self.next_number += count
            shipped = self.clock.now() - timedelta(days=SHIPPED_DAYS_AGO)
            lines = ["serial,sku,shipped_to,region,shipped_at"]
            lines += [f"{s},{sku},{partner.id},{partner.region},{shipped.date()}" for s in raw]
            try:
                async with self.db.transaction() as session:
                    report = await serials.import_serials(
                        session, self.admin, FrozenClock(shipped),
                        source=io.BytesIO(("\n".join(lines) + "\n").encode()),
                        filename=f"simulate-{self.run}-{first:0{NUMBER_WIDTH}d}.csv",
                    )  # fmt: skip
                    if report.inserted != count:
                        raise _RunIdTaken
            except _RunIdTaken:
                # Some of these serials exist already (a run id used before): the import is
                # rolled back, and a new run starts. A serial is never used twice.
                self.run, self.next_number = new_run_id(), 1
                continue
            return [serials.normalise_serial(s) for s in raw]


class _RunIdTaken(Exception):
    pass


def _invoice_pdf(
    invoice: str, customer: str, product: Product, units: int, amount_minor: int
) -> ProofFile:
    body = (
        f"%PDF-1.4\n% channelboard simulated invoice {invoice}\n% {customer}: {units} x "
        f"{product.sku} ({product.name}), {amount_minor / 100:.2f} {product.currency}\n%%EOF\n"
    ).encode()
    return ProofFile(filename=f"invoice-{invoice.lower()}.pdf", data=body)
