"""CSV lines that a spreadsheet opens without running anything: the one writer every export
uses (``forecasts.exports``: the finance exports; ``partners.audit_log.to_csv``: the audit log).

RFC 4180 lines (``\\r\\n``). Every text cell that starts with ``= + - @``, a tab or a
carriage return gets a leading apostrophe, so that Excel, LibreOffice and Google Sheets show
it as text instead of running it as a formula (OWASP, "CSV Injection"). The writer does this
for every ``str`` cell, so a column added later cannot forget it; what is a number stays a
number: an ``int``, or a decimal written as text and marked ``Numeral`` (``-12.50``), which
the writer leaves alone."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class Numeral(str):
    """A number written as text (a decimal amount such as ``-12.50``): a cell the writer
    keeps as it is. Only code makes one, from a number, never from input."""

    __slots__ = ()


Cell = str | int


def text_cell(value: str) -> str:
    """Text a spreadsheet will not run as a formula."""
    return f"'{value}" if value.startswith(FORMULA_PREFIXES) else value


def csv_line(cells: Sequence[Cell]) -> str:
    """One CSV line, every text cell (not ints, not ``Numeral``s) made formula-safe."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(
        [c if isinstance(c, int | Numeral) else text_cell(c) for c in cells]
    )
    return out.getvalue()
