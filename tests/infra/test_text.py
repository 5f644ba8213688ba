"""Text people see (``infra.text``): names refuse control and bidi override characters and
need a visible character; free text keeps its line breaks and tabs, nothing else."""

from __future__ import annotations

import pytest

from infra.text import (
    free_text_problem,
    identifier_problem,
    listed_identifier_problem,
    name_problem,
)

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses

NAMES = [
    "Müller GmbH",
    "شركة",
    "株式会社",
    "👩\u200d💻 Team",  # a zero-width joiner inside an emoji
    "O'Brien & Co.",
    "חברה בע״מ",
    "कंपनी",
    "❤\ufe0f Partners",  # a variation selector
    "Acme\u200fשלום",  # a right-to-left mark is a mark, not an override
]
REFUSED = {
    "\u202eevil": "U+202E",
    "a\x1bb": "U+001B",
    "\u200b": "visible",
    "  ": "visible",
    "": "visible",
    "x\x7f": "U+007F",
    "\u2066x\u2069": "U+2066",
    "a\x85b": "U+0085",  # C1
    "a\tb": "U+0009",
    "a\nb": "U+000A",
    "a\u2028b": "U+2028",
    "\u200d\ufe0f": "visible",
    "\u3164": "visible",
    "\x01": "U+0001",
}


@pytest.mark.parametrize("name", NAMES)
def test_a_name_people_can_read_is_accepted(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(("name", "named"), REFUSED.items(), ids=[repr(k) for k in REFUSED])
def test_a_name_with_controls_or_nothing_visible_is_refused(name: str, named: str) -> None:
    problem = name_problem(name)
    assert problem is not None
    assert named in problem


@pytest.mark.parametrize("text", ["line one\nline two", "a\tb\r\n", "", "مرحبا\n👍🏽", *NAMES])
def test_free_text_keeps_line_breaks_and_tabs(text: str) -> None:
    assert free_text_problem(text) is None


@pytest.mark.parametrize(
    ("text", "named"),
    [("\u202eevil", "U+202E"), ("a\x1bb", "U+001B"), ("x\x7f", "U+007F"),
     ("\u2066x\u2069", "U+2066"), ("a\x9bb", "U+009B"), ("a\x00b", "U+0000")],
)  # fmt: skip
def test_free_text_refuses_other_controls_and_bidi_overrides(text: str, named: str) -> None:
    problem = free_text_problem(text)
    assert problem is not None
    assert named in problem


IDENTIFIERS = [
    "INV-2026/0042",
    "crm:0001A",
    "EMEA",
    "SN 42 001",  # a space inside is part of the reference
    "müller@example.de",
    "+49 (30) 1234-5678",
    "https://hooks.example/in?x=1",
    "Rechnung Nr. 7",
    "請求書-7",
    "",  # whether an empty value is allowed is the field's rule
]
IDENTIFIERS_REFUSED = {
    "INV\u202e24": "U+202E",
    "INV\u200b1": "U+200B",  # looks like INV1, is not
    "ref\u200d": "U+200D",
    "\ufeffREF": "U+FEFF",
    "EM\u200fEA": "U+200F",  # a right-to-left mark: fine in a name, not in a reference
    "a\x1bb": "U+001B",
    "a\tb": "U+0009",
    "a\nb": "U+000A",
    "a\x00b": "U+0000",
    "x\x7f": "U+007F",
    "a\x85b": "U+0085",
    "a\u2029b": "U+2029",
    "\u2066x\u2069": "U+2066",
    " ": "visible",
    "\u3164": "visible",
}


@pytest.mark.parametrize("value", IDENTIFIERS)
def test_an_identifier_people_can_read_is_accepted(value: str) -> None:
    assert identifier_problem(value) is None


@pytest.mark.parametrize(
    ("value", "named"), IDENTIFIERS_REFUSED.items(), ids=[repr(k) for k in IDENTIFIERS_REFUSED]
)
def test_an_identifier_with_controls_or_invisible_characters_is_refused(
    value: str, named: str
) -> None:
    problem = identifier_problem(value)
    assert problem is not None
    assert named in problem


def test_a_value_contests_list_refuses_a_comma_and_keeps_wildcard_characters() -> None:
    """Commas separate a contest's eligible values; ``%`` and ``_`` are plain characters
    (matched exactly, ``leaderboards.repository.in_packed``)."""
    assert listed_identifier_problem("EMEA,APAC") == (
        "This value may not contain a comma (U+002C): contests list several, separated by commas."
    )
    for value in ("EM_A", "%", "DACH-NORTH", "\u0645\u0635\u0631"):
        assert listed_identifier_problem(value) is None
    problem = listed_identifier_problem("EM\u200bEA")
    assert problem is not None
    assert "U+200B" in problem
