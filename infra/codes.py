"""The standard code lists every input is checked against, from maintained data packages.

- currencies: ISO 4217 list one as published by its maintenance agency (package ``iso4217``),
  with each currency's minor units; codes without minor units (gold, SDR, the test and
  no-currency codes XTS/XXX) are not money amounts can be kept in;
- countries: ISO 3166-1 alpha-2 (package ``pycountry``);
- time zones: the IANA database (package ``tzdata``; ``zoneinfo`` reads the system copy
  first, the package is the list we accept so that every machine agrees on it).

Callers normalise (strip, upper-case) before asking; a check is an exact lookup.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import iso4217
import pycountry


@cache
def _minor_units() -> dict[str, int]:
    units = {code: str(entry.get("CcyMnrUnts") or "") for code, entry in iso4217.raw_table.items()}
    return {code: int(digits) for code, digits in units.items() if code and digits.isdigit()}


@cache
def _countries() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


@cache
def _time_zones() -> frozenset[str]:
    names = files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    # "Factory" is a placeholder zone for unconfigured machines, not a place.
    return frozenset(names) - {"Factory"}


def is_currency(code: str) -> bool:
    """An ISO 4217 currency with minor units, e.g. 'USD' (not 'ABC', 'XXX' or 'usd')."""
    return code in _minor_units()


def minor_units(currency: str) -> int | None:
    """Decimal places of the currency's minor unit (JPY 0, USD 2, KWD 3); None if unknown."""
    return _minor_units().get(currency)


def is_country(code: str) -> bool:
    """An assigned ISO 3166-1 alpha-2 code, e.g. 'DE' (not 'ZZ' or 'UK')."""
    return code in _countries()


def is_time_zone(name: str) -> bool:
    """An IANA time zone name, e.g. 'Europe/Berlin' or 'UTC' (case-sensitive, as in the
    database; not 'localtime' or a file path)."""
    return name in _time_zones()
