"""GET /exports/{kind}.csv: a CSV export streamed as it is read (``forecasts.exports``).

The caller's Bearer token is checked as for attachments; the kind's row in the ``EXPORTS``
policy table decides who may export it (403 ``FORBIDDEN`` otherwise) and its readable
statement which rows. ``since`` and ``until`` (ISO 8601; UTC when no offset; in the range
of any DateTime input, refused with 400 before the stream starts) bound the kind's time
column (``until`` exclusive; ``until`` at or before ``since`` is 400 ``INVALID_RANGE``).
The body is a Starlette ``StreamingResponse`` over keyset pages in a read-only session of
its own, so memory holds one page whatever the export's size."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from api.auth import Authenticator, AuthFailure
from forecasts import exports
from infra.errors import DomainError
from schema.context import Services
from schema.instants import InstantError, instant_of


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status
    )


async def download_export(request: Request) -> Response:
    services: Services = request.app.state.services
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(request.headers.get("authorization"))
    if isinstance(principal, AuthFailure):
        return _error(401, "UNAUTHENTICATED", "Authentication required.")
    kind = exports.kind_of(request.path_params["kind"])
    if kind is None:
        return _error(404, "NOT_FOUND", "No such export.")
    if not exports.allowed(principal, kind):
        return _error(403, "FORBIDDEN", "Your role may not export this.")
    bounds: dict[str, datetime | None] = {"since": None, "until": None}
    for name in bounds:
        if name in request.query_params:
            try:
                bounds[name] = instant_of(request.query_params[name].strip())
            except InstantError as error:
                return _error(400, "INVALID_DATETIME", f"'{name}' is not an ISO 8601 time: {error}")
    try:
        exports.check_bounds(bounds["since"], bounds["until"])
    except DomainError as error:
        return _error(400, error.code.value, error.message)

    async def body() -> AsyncIterator[str]:
        async with services.db.read_session() as session:
            async for chunk in exports.stream(
                session, principal, kind, since=bounds["since"], until=bounds["until"]
            ):
                yield chunk

    stamp = services.clock.now().strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{kind.kind.value}-{stamp}.csv"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )
