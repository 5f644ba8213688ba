"""JSON text for the database's JSON columns: orjson, with the json module where orjson
would differ.

orjson writes and reads JSON in a fraction of the json module's time (a signal run reads
and writes a snapshot's values and basis: the json module was a sixth of its CPU). Its
differences are kept out:

- writing, it refuses an integer beyond 64 bits, a non-string key and a lone surrogate:
  those values go to ``json.dumps`` as before (what SQLAlchemy used by default);
- reading, it turns an integer beyond 64 bits into a float (precision lost) and refuses
  ``NaN`` and ``Infinity`` (which ``json.dumps`` writes): text with a run of 19 digits or
  more (every integer beyond 63 bits has one) and text orjson refuses go to ``json.loads``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# Every integer beyond what orjson reads exactly (|n| >= 2**63, 19 digits) has such a run;
# so do some long floats, which json reads as well.
_LONG_NUMBER = re.compile(r"\d{19}")
_LONG_NUMBER_BYTES = re.compile(rb"\d{19}")


def dumps(value: Any) -> str:
    """JSON text of ``value`` (compact, UTF-8 as it is)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value)


def loads(text: str | bytes) -> Any:
    """The value of JSON ``text``, as ``json.loads`` reads it."""
    long = _LONG_NUMBER if isinstance(text, str) else _LONG_NUMBER_BYTES
    if long.search(text):  # type: ignore[arg-type]
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN, Infinity, a lone surrogate: as json reads them
        return json.loads(text)
