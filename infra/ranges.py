"""The rule every range a caller gives obeys: it starts before it ends.

A range whose end is at or before its start (``until`` exclusive) selects nothing by
construction, so it is a mistake to report, not an empty answer: one coded error, in the
module's own error-code enum, naming the end (the field the caller most often mistypes).
Ranges whose ends are days, inclusive (``signals``), check their own rule."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from infra.errors import DomainError


def check_order(
    code: Enum,
    start: datetime | None,
    end: datetime | None,
    *,
    names: tuple[str, str],
    field: str | None = None,
) -> None:
    """Raise ``DomainError(code)`` when both ends are given and ``end`` is not after
    ``start``. ``names`` are the ends as the caller wrote them (for the message); ``field``
    is the error's field, ``names[1]`` by default."""
    if start is not None and end is not None and start >= end:
        first, last = names
        raise DomainError(code, f"`{first}` must be before `{last}`.", field or last)
