"""The base of every event class a domain records in the outbox (``<domain>/events.py``).

An event is a frozen dataclass with its outbox ``type``; ``to_payload`` gives the JSON
object stored with it (ids as UUID strings, instants as ISO 8601, money as integer minor
units), and each class's ``parse`` reads one back. Producers build payloads only through
these classes; consumers parse them only through ``parse``."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    type: ClassVar[str]

    def to_payload(self) -> dict[str, Any]:
        def encode(value: Any) -> Any:
            if isinstance(value, uuid.UUID):
                return str(value)
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, list | tuple):
                return [encode(v) for v in value]
            if isinstance(value, dict):
                return {k: encode(v) for k, v in value.items()}
            return value

        return {k: encode(v) for k, v in asdict(self).items()}


def uuid_or_none(value: Any) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))
