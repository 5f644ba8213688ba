"""Every global id the API writes or reads names a type of the schema: an id written as
``Program:…`` while the schema's type is ``EarningProgram`` could not be fetched with
``node``, and an ``EarningProgram`` id from ``earningPrograms`` was refused where the rule
mutations wanted ``Program`` (they did, until this test)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from schema.root import build_schema

pytestmark = pytest.mark.backend_free  # the same whatever backend the run uses

ROOT = Path(__file__).resolve().parents[2]
# Calls whose last argument names the global id's type.
TYPED = {"id", "optional_id", "ids", "row_id", "global_id", "to_global_id", "optional_global_id"}


def _type_names() -> dict[str, list[str]]:
    """Each string literal given as a global id's type, with where it is given."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "schema").rglob("*.py")) + sorted((ROOT / "api").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            last = node.args[-1]
            if name in TYPED and isinstance(last, ast.Constant) and isinstance(last.value, str):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.setdefault(last.value, []).append(where)
    return found


def test_every_global_id_names_a_type_of_the_schema() -> None:
    names = _type_names()
    assert {"Partner", "EarningProgram", "IncentiveRule"} <= names.keys()  # the scan works
    schema = build_schema()
    unknown = {n: at for n, at in names.items() if schema.get_type_by_name(n) is None}
    assert unknown == {}
