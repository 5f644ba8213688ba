"""Text no column can hold: the character U+0000.

PostgreSQL refuses it in text and JSON values, so a string carrying it (a variable, or a
literal's `\\u0000` escape) failed the statement that stored it: an INTERNAL_SERVER_ERROR
after part of the work had run. No field has a use for it, so it is refused before the
operation runs, on every path that executes one (HTTP, both websocket protocols), with a
coded error naming where it is; SQLite and PostgreSQL answer alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import DocumentNode, GraphQLError, StringValueNode, Visitor, visit

NUL = "\x00"
CODE = "BAD_USER_INPUT"


def _path_of_nul(value: Any, path: str) -> str | None:
    """The first place in a JSON value where a string (a key included) holds U+0000."""
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                return path
            found = _path_of_nul(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _path_of_nul(item, f"{path}.{index}")
            if found is not None:
                return found
    return None


def nul_in_variables(variables: Mapping[str, Any] | None) -> GraphQLError | None:
    for name, value in (variables or {}).items():
        found = _path_of_nul(value, f"${name}")
        if found is not None:
            return GraphQLError(
                f"Variable {found} holds the character U+0000, which no text accepts.",
                extensions={"code": CODE},
            )
    return None


class _Finder(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: StringValueNode | None = None

    def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
        if NUL in node.value:
            self.found = node
            return self.BREAK
        return None


def nul_in_literals(document: DocumentNode) -> GraphQLError | None:
    finder = _Finder()
    visit(document, finder)
    if finder.found is None:
        return None
    return GraphQLError(
        "A string in the document holds the character U+0000, which no text accepts.",
        finder.found,
        extensions={"code": CODE},
    )
