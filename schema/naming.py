"""strawberry's name converter, remembering what it converted.

strawberry converts each argument's Python name to its GraphQL name (``contest_id`` to
``contestId``) on every call of a field with arguments, to look the value up: a few
percent of an executed `leaderboard(first: 10)`. The conversion depends on the name only,
and the names are the schema's own (a fixed set), so each is converted once."""

from __future__ import annotations

from strawberry.schema.name_converter import NameConverter


class RememberedNames(NameConverter):
    def __init__(self, auto_camel_case: bool = True) -> None:
        super().__init__(auto_camel_case)
        self._converted: dict[str, str] = {}

    def apply_naming_config(self, name: str) -> str:
        converted = self._converted.get(name)
        if converted is None:
            converted = self._converted[name] = super().apply_naming_config(name)
        return converted
