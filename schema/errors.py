"""User errors in mutation payloads: one interface, one concrete type per domain."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TypeVar

import strawberry

from infra.errors import DomainError

E = TypeVar("E")


@strawberry.interface(description="A problem with the input that the caller can fix.")
class UserError:
    field: str | None = strawberry.field(
        description="The input field at fault (camelCase, dotted when nested); null when "
        "the request as a whole is at fault."
    )
    message: str


def camel(field: str | None) -> str | None:
    if field is None:
        return None

    def one(part: str) -> str:
        head, *rest = part.split("_")
        return head + "".join(w.title() for w in rest)

    return ".".join(one(part) for part in field.split("."))


def user_errors(
    errors: list[DomainError], error_type: Callable[..., E], codes: type[Enum]
) -> list[E]:
    """Map domain errors onto a payload's error type (codes must be of ``codes``)."""
    return [error_type(field=camel(e.field), message=e.message, code=codes(e.code)) for e in errors]
