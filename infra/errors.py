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
