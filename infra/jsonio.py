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
from typing import Any

import orjson

# Every integer beyond what orjson reads exactly (|n| >= 2**63, 19 digits) has a run of 19
# ASCII digits; so do some long floats, which json reads as well. Found as a run of 19
# zeros once every digit is made a zero (``bytes.translate``, in C: a regular expression
# tried at every position of the text cost ~40 us a kilobyte, 0.1 ms of a signal run).
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def dumps(value: Any) -> str:
    """JSON text of ``value`` (compact, UTF-8 as it is)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value)


def loads(text: str | bytes) -> Any:
    """The value of JSON ``text``, as ``json.loads`` reads it."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _LONG_NUMBER in raw.translate(_DIGITS_AS_ZERO):
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN, Infinity, a lone surrogate: as json reads them
        return json.loads(text)
