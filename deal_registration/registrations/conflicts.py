"""Is this the same customer? Registrable domains, normalised company names, and a score.

Pure functions, no database: the service feeds them candidate registrations, the corpus
test (tests/data/deal_conflicts.json) measures them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from publicsuffixlist import PublicSuffixList
from rapidfuzz import fuzz

from deal_registration.registrations.models import ConflictRule

# Legal-form words dropped from the end of a name (after punctuation is removed and
# dotted abbreviations are joined: "S.A." -> "sa", "L.L.C." -> "llc").
LEGAL_SUFFIXES = frozenset(
    """
    inc incorporated corp corporation co company cos llc llp lp ltd limited plc pllc
    gmbh mbh ag kg kgaa ohg ug ev sa sas sasu sarl sl sll srl spa sapa snc scs
    bv nv vof oy oyj ab asa as aps a/s kk pte pty pvt private sdn bhd nl
    holding holdings group intl international
    """.split()
)
# Leading words that say nothing about the company.
LEADING_NOISE = frozenset({"the"})
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def host_of(text: str) -> str | None:
    """The host name in a domain, URL or e-mail address, lower-cased and IDNA-encoded; None
    when it is not a plausible public host name."""
    value = text.strip().lower()
    if not value:
        return None
    if "@" in value and "://" not in value:
        value = value.rsplit("@", 1)[1]
    value = re.sub(r"^[a-z][a-z0-9+.-]*://", "", value)
    value = re.split(r"[/?#]", value, maxsplit=1)[0]
    value = value.rsplit("@", 1)[-1]  # user:pass@host
    value = re.sub(r":\d+$", "", value).rstrip(".")
    if not value or " " in value:
        return None
    try:
        value = value.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = value.split(".")
    if len(labels) < 2 or len(value) > 253 or not all(_LABEL.match(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None  # an IP address, not a company's domain
    return value


def registrable_domain(text: str) -> str | None:
    """The domain a company registers (eTLD+1 by the Public Suffix List): "www.acme.com",
    "https://shop.acme.com/x" and "sales@eu.acme.com" all give "acme.com";
    "shop.acme.co.uk" gives "acme.co.uk". None when there is none (e.g. "co.uk")."""
    host = host_of(text)
    if host is None:
        return None
    found = _psl().privatesuffix(host)
    return str(found) if found else None


def normalise_name(name: str) -> str:
    """Case, accents, punctuation and legal forms folded away: "ACME Corp." and
    "Acme Corporation, Inc." both give "acme"; "Société Générale S.A." gives
    "societe generale"."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.casefold().replace("&", " and ").replace("+", " and ")
    text = text.replace("ß", "ss").replace("ø", "o").replace("æ", "ae").replace("ł", "l")
    text = re.sub(r"(?<=\w)['’](?=\w)", "", text)  # o'brien -> obrien
    text = re.sub(r"\b(\w)\.(?=\w\.)", r"\1", text)  # s.a. -> sa. ; l.l.c. -> llc.
    text = re.sub(r"\b(\w)\.(\w)\.?", r"\1\2", text)
    text = re.sub(r"[^\w]+", " ", text).replace("_", " ")
    words = text.split()
    while len(words) > 1 and words[0] in LEADING_NOISE:
        words.pop(0)
    while len(words) > 1 and words[-1] in LEGAL_SUFFIXES:
        words.pop()
    while len(words) > 1 and words[-1] == "and":  # "Smith and Co" -> "smith"
        words.pop()
    return " ".join(words)


def name_similarity(a: str, b: str) -> int:
    """0-100 similarity of two normalised names. Word order does not matter; a name that is
    merely contained in a longer one ("acme" in "acme foods") scores low."""
    if not a or not b:
        return 0
    if a == b or a.replace(" ", "") == b.replace(" ", ""):
        return 100
    if _is_acronym_of(a, b) or _is_acronym_of(b, a):
        return ACRONYM_SCORE
    return round(max(fuzz.ratio(a, b), fuzz.token_sort_ratio(a, b)))


ACRONYM_SCORE = 90


def _is_acronym_of(short: str, long: str) -> bool:
    """ "ibm" for "international business machines", "bnl" for "buy n large"."""
    words = long.split()
    compact = short.replace(" ", "")
    return len(words) >= 2 and 2 <= len(compact) <= 6 and compact == "".join(w[0] for w in words)


@dataclass(frozen=True)
class Customer:
    """What a registration says about its end customer, in matching form."""

    name_key: str
    domain: str
    country: str
    skus: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Match:
    rules: tuple[ConflictRule, ...]
    score: int
    name_score: int
    shared_skus: tuple[str, ...]
    same_country: bool


PRODUCT_OVERLAP_BONUS = 5
SAME_COUNTRY_BONUS = 5
OTHER_COUNTRY_PENALTY = 10


def compare(a: Customer, b: Customer, *, threshold: int) -> Match | None:
    """A conflict when both name the same registrable domain, or when their names are
    similar enough: the name score, raised by overlapping products and the same country
    (lowered for different countries), reaches ``threshold``."""
    name_score = name_similarity(a.name_key, b.name_key)
    shared = tuple(sorted(a.skus & b.skus))
    same_country = a.country == b.country
    score = name_score
    if shared:
        score += PRODUCT_OVERLAP_BONUS
    score += SAME_COUNTRY_BONUS if same_country else -OTHER_COUNTRY_PENALTY
    score = max(0, min(100, score))
    rules: list[ConflictRule] = []
    if a.domain and a.domain == b.domain:
        rules.append(ConflictRule.DOMAIN)
    if score >= threshold:
        rules.append(ConflictRule.NAME)
    if ConflictRule.DOMAIN in rules:
        score = 100
    if not rules:
        return None
    return Match(
        rules=tuple(rules),
        score=score,
        name_score=name_score,
        shared_skus=shared,
        same_country=same_country,
    )


def find_matches(
    subject: Customer, candidates: Iterable[tuple[object, Customer]], *, threshold: int
) -> list[tuple[object, Match]]:
    out = []
    for key, candidate in candidates:
        match = compare(subject, candidate, threshold=threshold)
        if match is not None:
            out.append((key, match))
    return out
