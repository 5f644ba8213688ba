"""A partner's name as people read it: the key of the one-name-per-vendor rule, stored in
``partner.name_key`` (unique per vendor) and computed here alone."""

from __future__ import annotations

import unicodedata

# The longest key stored. A name has at most 200 characters, but NFKC spells some out (one
# ligature becomes up to 18 characters) and case folding lengthens others (ß is ss); 600
# characters of at most 4 bytes each keep an index entry inside PostgreSQL's B-tree limit
# (about 2,700 bytes). Only a name made of such characters reaches it.
MAX_NAME_KEY = 600


def name_key(name: str) -> str:
    """A partner name as people read it, for the one-per-vendor rule: compatibility forms
    composed (NFKC: a fullwidth A is an A), Unicode case folding (SQL's lower() folds only
    ASCII on SQLite), and no invisible format characters (a zero-width space). Computed in
    Python, so SQLite and PostgreSQL store and compare alike."""
    text = unicodedata.normalize("NFKC", name)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf").casefold()
