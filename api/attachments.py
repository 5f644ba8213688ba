"""GET /attachments/{id}: download a proof file.

A plain authenticated route rather than a signed URL: the caller's Bearer token is checked
and visibility is decided at download time by the owning domain (the same rule as reading
the claim), so a revoked user or a reassigned manager loses access at once, and no
bearer-by-URL secret can leak through logs, browser history or Referer headers. It works
the same for every storage backend.
"""

from __future__ import annotations

import logging
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api.auth import Authenticator, AuthFailure
from deal_registration import attachment_access
from deal_registration.storage import StorageError, StorageUnavailable
from schema.context import Services

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status
    )


async def download_attachment(request: Request) -> Response:
    services: Services = request.app.state.services
    authenticator: Authenticator = request.app.state.authenticator
    outcome = await authenticator.authenticate(request.headers.get("authorization"))
    if isinstance(outcome, AuthFailure):
        return _error(401, "UNAUTHENTICATED", "Authentication required.")
    try:
        attachment_id = uuid.UUID(request.path_params["attachment_id"])
    except ValueError:
        attachment_id = None
    attachment = None
    if attachment_id is not None:
        async with services.db.session() as session:
            attachment = await attachment_access.get_readable_attachment(
                session, outcome, attachment_id
            )
    if attachment is None or services.storage is None:
        return _error(404, "NOT_FOUND", "No such file.")
    try:
        data = await services.storage.get(attachment.storage_key)
    except StorageUnavailable:  # a disk or bucket out of reach: try again later
        log.warning("attachment %s: the store cannot give it", attachment.id, exc_info=True)
        return _error(503, "SERVICE_UNAVAILABLE", "The file store is unavailable; try again.")
    except StorageError:  # a row whose file is gone: lost data, for an operator to see
        log.error("attachment %s: its file %s is missing", attachment.id, attachment.storage_key)
        return _error(404, "NOT_FOUND", "This file is missing from the store.")
    return Response(
        data,
        media_type=attachment.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{attachment.filename}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
