"""Bulk import of partners from a CSV file, with the serial import's conventions
(deal_registration/sales/serials.py): UTF-8 (a BOM is fine), a checked header, every bad
row reported with its line number and a code, all-or-nothing unless the caller asks for the
good rows only, and a re-import that changes nothing.

Header: ``name,region`` and any of ``external_ref,legal_name,country,tags,contact_name,
contact_email,contact_phone`` in any order. A row is matched to an existing partner by its
``external_ref`` when it has one, otherwise by its name as people read it (``name_key``:
case, compatibility forms and invisible characters aside), looked up for the file's own
names and references only; a match is updated where a column present in the file
differs, anything else is created. Columns left out of the header leave those fields as
they are. ``tags`` are separated by ``;``; the
contact columns give the partner's one contact (empty: no contacts). Tier is not imported
(it has its own history elsewhere); archived partners are refused, not revived.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable
from typing import IO, Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from infra import imports
from infra.clock import Clock
from infra.errors import DomainError
from partners.admin import (
    GROUP_RULE_FIELDS,
    Change,
    Contact,
    PartnerFields,
    audit,
    clean,
    refresh_partner_groups,
    snapshot,
)
from partners.audit_log import actor_of
from partners.errors import PartnerErrorCode
from partners.events import record_enrolled
from partners.models import Partner, PartnerStatus
from partners.names import name_key
from partners.policy import PARTNERS, PartnerOp
from partners.roles import Principal

REQUIRED_COLUMNS = ("name", "region")
OPTIONAL_COLUMNS = (
    "external_ref",
    "legal_name",
    "country",
    "tags",
    "contact_name",
    "contact_email",
    "contact_phone",
)
CONTACT_COLUMNS = ("contact_name", "contact_email", "contact_phone")


class ImportReport(imports.ImportReport[PartnerErrorCode]):
    """What a partner import did (or, refused, found)."""


ImportRejected = imports.ImportRejected


def _columns(header: list[str]) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    allowed = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    if (
        len(set(names)) != len(names)
        or not set(REQUIRED_COLUMNS) <= set(names)
        or not set(names) <= allowed
    ):
        raise DomainError(
            PartnerErrorCode.WRONG_HEADER,
            f"Line 1 must be the header: {','.join(REQUIRED_COLUMNS)} and any of "
            f"{','.join(OPTIONAL_COLUMNS)}; found '{','.join(header)[:200]}'.",
            "file",
        )
    return {name: index for index, name in enumerate(names)}


def _fields(row: list[str], columns: dict[str, int]) -> PartnerFields:
    def get(name: str) -> str | None:
        return row[columns[name]] if name in columns else None

    contacts: list[Contact] | None = None
    if any(c in columns for c in CONTACT_COLUMNS):
        name, email, phone = (get(c) or "" for c in CONTACT_COLUMNS)
        contacts = [Contact(name, email, phone)] if (name + email + phone).strip() else []
    tags_text = get("tags")
    tags = None if tags_text is None else [t for t in tags_text.split(";") if t.strip()]
    return PartnerFields(
        name=get("name"),
        legal_name=get("legal_name"),
        region=get("region"),
        country=get("country"),
        external_ref=get("external_ref"),
        contacts=contacts,
        tags=tags,
    )


# How many keys one look-up sends (each is a bound parameter; drivers cap them per statement).
LOOKUP_BATCH = 1000


async def _existing(
    session: AsyncSession, vendor_id: uuid.UUID, parsed: list[tuple[int, dict[str, Any]]]
) -> tuple[dict[str, Partner], dict[str, Partner]]:
    """The vendor's partners the file's rows may match, by external reference and by name
    key: only those (indexed look-ups of the file's own keys), never the whole vendor."""
    refs = sorted({v["external_ref"] for _, v in parsed if v.get("external_ref")})
    keys = sorted({name_key(v["name"]) for _, v in parsed})
    by_ref: dict[str, Partner] = {}
    by_name: dict[str, Partner] = {}
    for column, wanted in ((Partner.external_ref, refs), (Partner.name_key, keys)):
        for start in range(0, len(wanted), LOOKUP_BATCH):
            found = await session.exec(
                select(Partner).where(
                    Partner.vendor_id == vendor_id,
                    col(column).in_(wanted[start : start + LOOKUP_BATCH]),
                )
            )
            for partner in found:
                if partner.external_ref:
                    by_ref[partner.external_ref] = partner
                by_name[partner.name_key] = partner
    return by_ref, by_name


async def import_partners(
    session: AsyncSession,
    principal: Principal,
    clock: Clock,
    *,
    source: IO[bytes],
    filename: str = "",
    good_rows_only: bool = False,
    progress: Callable[[int], None] | None = None,
    actor: str | None = None,
) -> ImportReport:
    """Import a partner CSV into the caller's vendor. Vendor admins only. ``actor`` names
    the caller in the audit log when the principal is not a user or key (the CLI)."""
    PARTNERS.require(principal, PartnerOp.PARTNERS_IMPORT)
    vendor_id = principal.vendor_id
    text = imports.Source(source, progress).text()
    rows = csv.reader(text, strict=True)
    report = ImportReport()
    parsed: list[tuple[int, dict[str, Any]]] = []  # (line, clean values) of the readable rows
    try:
        header = next(rows, None)
        if header is None:
            raise DomainError(PartnerErrorCode.EMPTY_FILE, "The file is empty.", "file")
        columns = _columns(header)
        for row in rows:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            line = rows.line_num
            report.rows += 1
            if len(row) != len(columns):
                report.add_error(
                    line,
                    PartnerErrorCode.WRONG_COLUMN_COUNT,
                    f"Expected {len(columns)} columns, found {len(row)}.",
                )
                continue
            values, errors = clean(_fields(row, columns))
            if errors:
                first = errors[0]
                report.add_error(line, first.code, f"{first.field}: {first.message}")  # type: ignore[arg-type]
                continue
            parsed.append((line, values))
    except UnicodeDecodeError as exc:
        raise DomainError(
            PartnerErrorCode.BAD_ENCODING,
            f"The file is not UTF-8 text (near line {report.rows + 2}).",
            "file",
        ) from exc
    except csv.Error as exc:
        raise DomainError(
            PartnerErrorCode.MALFORMED_CSV, f"Line {rows.line_num}: not valid CSV ({exc}).", "file"
        ) from exc
    if report.rows == 0:
        raise DomainError(PartnerErrorCode.EMPTY_FILE, "The file has no rows.", "file")
    by_ref, by_name = await _existing(session, vendor_id, parsed)
    planned: list[tuple[Partner | None, dict[str, Any]]] = []
    seen_keys: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    for line, values in parsed:
        ref = values.get("external_ref")
        folded = name_key(values["name"])
        key = f"ref:{ref}" if ref else f"name:{folded}"
        if key in seen_keys:
            report.add_error(
                line,
                PartnerErrorCode.DUPLICATE_IN_FILE,
                f"The same partner is already on line {seen_keys[key]}.",
            )
            continue
        target = by_ref.get(ref) if ref else None
        if target is None:
            target = by_name.get(folded)
            if target is not None and ref and target.external_ref not in (None, ref):
                report.add_error(
                    line,
                    PartnerErrorCode.DUPLICATE_NAME,
                    "Another partner (with another external_ref) has this name.",
                )
                continue
        if folded in seen_names:
            report.add_error(
                line,
                PartnerErrorCode.DUPLICATE_IN_FILE,
                f"The same name is already on line {seen_names[folded]}.",
            )
            continue
        other = by_name.get(folded)
        if other is not None and target is not None and other.id != target.id:
            report.add_error(
                line, PartnerErrorCode.DUPLICATE_NAME, "Another partner has this name."
            )
            continue
        if target is not None and target.status is PartnerStatus.ARCHIVED:
            report.add_error(
                line,
                PartnerErrorCode.ARCHIVED,
                "This partner is archived: it takes no changes.",
            )
            continue
        seen_keys[key] = line
        seen_names[folded] = line
        planned.append((target, values))
    report.errors.sort(key=lambda e: e.line)
    if report.rejected and not good_rows_only:
        raise ImportRejected(PartnerErrorCode.ROWS_REJECTED, report)
    reason = f"import {filename}".strip()
    regroup: list[Partner] = []  # created, or changed in a field group rules read
    for target, values in planned:
        if target is None:
            partner = Partner(vendor_id=vendor_id, created_at=clock.now(), **values)
            session.add(partner)
            await session.flush()
            report.inserted += 1
            regroup.append(partner)
            change = Change(partner, "partner.created", None, snapshot(partner, sorted(values)))
            await audit(session, principal, clock, change, actor=actor, reason=reason)
            await record_enrolled(session, clock, partner, via="IMPORT")
            continue
        changed = sorted(k for k, v in values.items() if getattr(target, k) != v)
        if not changed:
            report.unchanged += 1
            continue
        before = snapshot(target, changed)
        for key in changed:
            setattr(target, key, values[key])
        session.add(target)
        await session.flush()
        report.updated += 1
        change = Change(target, "partner.updated", before, snapshot(target, changed))
        await audit(session, principal, clock, change, actor=actor, reason=reason)
        if GROUP_RULE_FIELDS.intersection(changed):
            regroup.append(target)
    await refresh_partner_groups(
        session, clock, regroup, reason=reason, by=actor or actor_of(principal)
    )
    report.applied = True
    return report
