"""The error every domain service raises for something the caller can fix."""

from __future__ import annotations

from enum import Enum


class DomainError(Exception):
    """A rule was broken by the request; nothing was changed.

    ``code`` is a member of the domain's error-code enum, ``field`` the input field at fault
    (dotted for nested input) or None when the request as a whole is at fault.
    """

    def __init__(self, code: Enum, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def __repr__(self) -> str:
        return f"DomainError({self.code.name}, {self.message!r}, field={self.field!r})"


class DomainErrors(Exception):
    """Several independent input problems found at once (all are reported to the caller)."""

    def __init__(self, errors: list[DomainError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


class Forbidden(Exception):
    """The caller's role may never perform this operation (a domain's policy table says so).

    The schema refuses such calls before any resolver runs (its permission classes read the
    same tables); a service raises this for any other caller — a CLI command, a worker —
    and the schema answers it as ``FORBIDDEN`` should one ever escape a service.
    """

    def __init__(self, operation: Enum) -> None:
        super().__init__(f"Your role may not perform {operation.value}.")
        self.operation = operation
