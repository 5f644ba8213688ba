"""Text people see, checked in one place: which characters a name or a free text may hold.

Names and titles are shown to other people — on phones, web pages and office TV screens —
so a character that hides, reorders or rewrites what is shown is refused where the text
comes in (GraphQL, CLI, CSV import), not escaped at each screen. Two kinds of text:

- a **name** (one line: a partner, vendor, group, user, contest, prize, rule, program, tier,
  pilot, product or display key name, a recommendation's title) refuses every control
  character — C0 (U+0000–U+001F, tab and line breaks included), DEL (U+007F), C1
  (U+0080–U+009F), the line and paragraph separators (U+2028, U+2029) — and the explicit
  bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069: the
  "Trojan Source" characters, which show a name reversed or reordered). A name must also
  keep a visible character once the invisible ones are set aside: whitespace, format
  characters (zero-width space U+200B, joiners, U+FEFF…), variation selectors and the
  blank fillers (U+115F, U+1160, U+3164, U+FFA0, U+2800).
- a **free text** (descriptions, notes, reasons, messages, a recommendation's text) keeps
  tab, line feed and carriage return and refuses the other characters names refuse.
- an **identifier** (one line a partner or vendor types to match, look up or reconcile a
  record: a partner's external reference and region, an invoice number, a serial, a SKU and
  category, a billing system's subscription id, an e-mail address, a phone number, a
  webhook URL) refuses what a name refuses and, on top, every format character (category
  Cf: the zero-width space, joiners, the right-to-left marks U+200E/U+200F, U+FEFF…):
  an identifier is compared for equality (a duplicate, a re-import's match, a search), and
  an invisible character makes two references that look the same differ. It must keep a
  visible character. Surrounding whitespace is not part of an identifier: callers strip it
  (``str.strip``) before the check and store the stripped value, as they do for names; an
  empty value is the caller's ``REQUIRED`` (or "none", where the field is optional).
  An identifier a contest's eligibility lists (a partner's region, the tiers, regions and
  SKUs a contest names: ``listed_identifier_problem``) refuses the comma too, which
  separates the items of the stored list (``leaderboards.models.pack``): ``EMEA,APAC`` would
  read as two regions.

Everything else is text: any script, right-to-left scripts included (Arabic, Hebrew: only
the explicit override controls are refused, not the right-to-left marks U+200E/U+200F),
emoji with their zero-width joiners (U+200D) and variation selectors, combining marks.

Each check answers a message that names the first refused character by code point (e.g.
``U+202E``) or None; the domain raises it with its error enum's ``INVALID_CHARACTERS``.
"""

from __future__ import annotations

import unicodedata

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Whitespace in free text: what multi-line text is made of.
TEXT_LAYOUT = frozenset("\t\n\r")
# Letters (category Lo) and symbols that are shown as nothing.
BLANK_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _refused(ch: str, *, multiline: bool) -> bool:
    if ch in BIDI_CONTROLS:
        return True
    if multiline and ch in TEXT_LAYOUT:
        return False
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def _invisible(ch: str) -> bool:
    return (
        ch.isspace()
        or unicodedata.category(ch) == "Cf"
        or ch in BLANK_FILLERS
        or "\ufe00" <= ch <= "\ufe0f"
        or "\U000e0100" <= ch <= "\U000e01ef"
    )


def code_point(ch: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``; control characters have no name, only a number."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" ({name})" if name else "")


def _first_refused(value: str, *, multiline: bool) -> str | None:
    for ch in value:
        if _refused(ch, multiline=multiline):
            return ch
    return None


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be a name shown to people, or None if it can."""
    if (ch := _first_refused(value, multiline=False)) is not None:
        return f"A name may not contain the control character {code_point(ch)}."
    if all(_invisible(ch) for ch in value):
        return "A name needs a visible character, not only spaces or invisible characters."
    return None


def identifier_problem(value: str) -> str | None:
    """Why ``value`` (already stripped) cannot be an identifier shown to people, or None if
    it can. The empty string is not checked here: whether it is allowed is the field's."""
    if (ch := _first_refused(value, multiline=False)) is not None:
        return f"An identifier may not contain the control character {code_point(ch)}."
    for ch in value:
        if unicodedata.category(ch) == "Cf":
            return f"An identifier may not contain the invisible character {code_point(ch)}."
    if value and all(_invisible(ch) for ch in value):
        return "An identifier needs a visible character, not only spaces or invisible characters."
    return None


def listed_identifier_problem(value: str) -> str | None:
    """``identifier_problem``, and a comma refused: the value is one a contest's eligibility
    lists, whose items commas separate."""
    if problem := identifier_problem(value):
        return problem
    if "," in value:
        return (
            "This value may not contain a comma (U+002C): contests list several, "
            "separated by commas."
        )
    return None


def free_text_problem(value: str) -> str | None:
    """Why ``value`` cannot be a free text shown to people, or None if it can."""
    if (ch := _first_refused(value, multiline=True)) is not None:
        return f"The text may not contain the control character {code_point(ch)}."
    return None
