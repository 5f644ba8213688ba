"""DateTime and Date inputs every layer below can use.

strawberry's scalars accept any ISO value Python parses, so an instant at the edge of
Python's range with an offset (``0001-01-01T00:00:00+05:00``, ``9999-12-31T23:59:59-05:00``)
failed on its way to UTC (OverflowError), and one without an offset failed where the
database stores only UTC instants: an INTERNAL_SERVER_ERROR on either backend. Here an
instant is parsed once, made UTC (a value without an offset is read as UTC, as the imports
read one), and must lie in years 1 to 9998, leaving services a year of room for the
windows, months and periods they compute from it; a date the same. What is refused is a
coded error naming the variable (GRAPHQL_VALIDATION_FAILED, as for any variable a scalar
refuses), before the operation runs.
"""

from __future__ import annotations

import datetime as dt

from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition

FIRST = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)  # exclusive
RANGE = "from 0001-01-01T00:00:00Z up to (not including) 9999-01-01T00:00:00Z"


def _refuse(value: object, kind: str, why: str) -> StrawberryInputCoercionError:
    return StrawberryInputCoercionError(f'Value cannot represent a {kind}: "{value}". {why}')


class InstantError(ValueError):
    """Not an ISO 8601 instant in the range every layer can use; the message says why."""


def instant_of(text: str) -> dt.datetime:
    """An ISO 8601 date or time as a UTC instant (UTC when it has no offset) in years 1 to
    9998, or ``InstantError``. For every input that takes an instant as text, the GraphQL
    scalar, the CSV export's query parameters and the CLI options alike."""
    # What strawberry's own DateTime accepted (dateutil's isoparse: RFC 3339's lower-case
    # "t" and "z", ISO 8601's 24:00, reduced precision, week and ordinal dates), so no value
    # a client sent before is refused now (``datetime.fromisoformat`` refuses several).
    # And what ``datetime.fromisoformat`` accepted (the export's and the CLI's parser, and
    # this one's for a while) that isoparse does not: an offset with seconds, a space
    # before the offset.
    assert DateTimeDefinition.parse_value is not None
    try:
        parsed = DateTimeDefinition.parse_value(text)
    except StrawberryInputCoercionError as error:  # its message: '... "<text>". <why>'
        parsed = _fromisoformat(text)
        if parsed is None:
            why = str(error).rpartition('". ')[2] or "Not an ISO 8601 instant."
            raise InstantError(why) from None
    except (ValueError, OverflowError) as error:  # 9999-12-31T24:00 overflows
        raise InstantError(str(error)) from None
    assert isinstance(parsed, dt.datetime)
    try:
        instant = (
            parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
        )
    except OverflowError:
        instant = None
    if instant is None or not FIRST <= instant < END:
        raise InstantError(f"An instant is {RANGE}.")
    return instant


def _fromisoformat(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_instant(value: object) -> dt.datetime:
    if not isinstance(value, str):
        raise _refuse(value, "DateTime", "Expected a string.")
    try:
        return instant_of(value)
    except InstantError as error:
        raise _refuse(value, "DateTime", str(error)) from None


def parse_date(value: object) -> dt.date:
    if not isinstance(value, str):
        raise _refuse(value, "Date", "Expected a string.")
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError as error:
        raise _refuse(value, "Date", str(error)) from None
    if parsed.year > END.year - 1:
        raise _refuse(value, "Date", "A date is from 0001-01-01 to 9998-12-31.")
    return parsed


def _isoformat(value: dt.date) -> str:
    return value.isoformat()


INSTANT_SCALARS: dict[object, ScalarDefinition] = {
    dt.datetime: ScalarDefinition(
        name="DateTime",
        description="An instant in ISO 8601, e.g. 2027-01-15T09:30:00+01:00; without an offset "
        "it is read as UTC. From 0001-01-01T00:00:00Z up to 9999-01-01T00:00:00Z.",
        specified_by_url=None,
        serialize=_isoformat,
        parse_value=parse_instant,
        parse_literal=None,
        origin=dt.datetime,
    ),
    dt.date: ScalarDefinition(
        name="Date",
        description="A calendar date in ISO 8601, e.g. 2027-01-15; from 0001-01-01 to 9998-12-31.",
        specified_by_url=None,
        serialize=_isoformat,
        parse_value=parse_date,
        parse_literal=None,
        origin=dt.date,
    ),
}
