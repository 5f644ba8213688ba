"""User errors in mutation payloads: one interface, one concrete type per domain; and a
domain error in a query's arguments as a coded GraphQL error (``query_error``)."""

from __future__ import annotations

import typing
from enum import Enum
from typing import Any

import strawberry
from graphql import GraphQLError

from infra.errors import DomainError


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


def user_errors(errors: list[DomainError], error_type: type[UserError]) -> list[Any]:
    """Domain errors as a payload's error type; their codes are of the enum its ``code``
    field is typed with."""
    codes: type[Enum] = typing.get_type_hints(error_type)["code"]
    return [
        error_type(field=camel(e.field), message=e.message, code=codes(e.code))  # type: ignore[call-arg]
        for e in errors
    ]


def query_error(error: DomainError) -> GraphQLError:
    """A domain error in a query's arguments: a coded GraphQL error naming the argument."""
    extensions = {"code": error.code.value}
    if error.field:
        extensions["field"] = camel(error.field) or ""
    return GraphQLError(error.message, extensions=extensions)
