"""A text filter of a list (a partner's name, a product's SKU or name, a deal's customer):
the caller's term, judged once, before it becomes a LIKE pattern.

A term of any length went into the pattern as it came: SQLite refuses a LIKE pattern
over 50,000 bytes ("LIKE or GLOB pattern too complex"), so a long search was an
INTERNAL_SERVER_ERROR there, while PostgreSQL compared it with every row. No column that is
searched holds more than 255 characters, so a longer term can match nothing: it is refused
with a coded error naming the argument (``SEARCH_TOO_LONG``). And the term is text, not a
pattern: its ``%`` and ``_`` are matched as themselves (``contains``), so "100%" finds
"100% Uptime Ltd", not "1000 Widgets".
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement

from infra.errors import DomainError

MAX_TERM_LENGTH = 256


class SearchErrorCode(StrEnum):
    SEARCH_TOO_LONG = "SEARCH_TOO_LONG"


def search_term(value: str | None, field: str) -> str | None:
    """``value`` without surrounding white space, None when nothing is left; a DomainError
    (SEARCH_TOO_LONG at ``field``) when it is longer than any searched text."""
    if value is None:
        return None
    term = value.strip()
    if len(term) > MAX_TERM_LENGTH:
        raise DomainError(
            SearchErrorCode.SEARCH_TOO_LONG,
            f"A search term is at most {MAX_TERM_LENGTH} characters.",
            field,
        )
    return term or None


def contains(column: Any, term: str, *, case_sensitive: bool = False) -> ColumnElement[bool]:
    """``column`` holds ``term`` (ignoring case unless ``case_sensitive``), its LIKE
    wildcards escaped: a term is text the caller typed, not a pattern."""
    if case_sensitive:
        return column.contains(term, autoescape=True)  # type: ignore[no-any-return]
    return column.icontains(term, autoescape=True)  # type: ignore[no-any-return]
