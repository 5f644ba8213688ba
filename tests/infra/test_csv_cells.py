"""The one CSV writer (``infra.csv_cells``): every text cell, whatever its column, is made
formula-safe (OWASP CSV injection); numbers (ints, ``Numeral`` decimals) stay numbers."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

import pytest

from infra.audit import AuditEntry
from infra.csv_cells import Numeral, csv_line
from partners.audit_log import to_csv

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses


@pytest.mark.parametrize(
    ("cells", "line"),
    [
        (["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"],
         "'=1+1,'+1,'-1,'@SUM(A1),'\tx,\"'\rx\"\r\n"),
        (["plain", "", "a=b", "EUR"], "plain,,a=b,EUR\r\n"),
        ([-5, Numeral("-12.50"), Numeral("+3"), "-12.50"], "-5,-12.50,+3,'-12.50\r\n"),
        (['=HYPERLINK("http://evil.example")'], "\"'=HYPERLINK(\"\"http://evil.example\"\")\"\r\n"),
    ],
)  # fmt: skip
def test_every_text_cell_is_formula_safe_and_numbers_stay_numbers(
    cells: list[str | int], line: str
) -> None:
    assert csv_line(cells) == line


def test_the_audit_log_csv_uses_the_same_writer() -> None:
    entry = AuditEntry(
        actor="@evil", action="-x", entity_type="+y", entity_id="=z", reason="\tr",
        vendor_id=uuid.uuid4(), at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    [_, row] = list(csv.reader(io.StringIO(to_csv([entry]))))
    assert row[2:6] == ["'@evil", "'-x", "'+y", "'=z"]
    assert row[8] == "'\tr"
