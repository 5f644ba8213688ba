"""Cross-origin requests from browsers (CORS): vendors show leaderboards and partner data
on their own portals, whose pages call /graphql from another origin.

Starlette's ``CORSMiddleware`` answers preflights and adds the headers, around everything
else (``api.ws_lean.App``: outside Starlette's error middleware too, so a 500 is readable
by the page rather than an opaque network error). Allowed origins come from
``CHANNELBOARD_CORS_ORIGINS`` (``api.settings.CorsSettings``); unset, the middleware is not
installed and the API is same-origin only, as before.

Credentials are bearer tokens a page puts in ``Authorization`` itself: no cookie, no HTTP
authentication, nothing a browser attaches on its own. So ``*`` (any origin) gives a
page nothing its user did not hand it, and is allowed, without credentials (browsers
refuse ``*`` with them, and so do the settings).
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from api.settings import CorsSettings

METHODS = ("GET", "POST")
# What GraphQL clients send besides the CORS-safelisted headers (Accept, Content-Type with
# any value is listed too): the credential; Apollo's client awareness and CSRF-prevention
# headers (apollo-upload-client sends Apollo-Require-Preflight); the trace headers that
# browser tracing SDKs (OpenTelemetry, Sentry) add to requests for an allowed API. One
# header a preflight does not allow fails the whole request, so the common ones are here;
# the server reads none of them but Authorization.
HEADERS = (
    "Authorization",
    "Content-Type",
    "Accept",
    "apollographql-client-name",
    "apollographql-client-version",
    "apollo-require-preflight",
    "x-apollo-operation-name",
    "traceparent",
    "tracestate",
    "baggage",
    "sentry-trace",
)
# Response headers a page may read besides the safelisted ones: a download's file name.
EXPOSED = ("Content-Disposition",)
# Chromium caps a preflight's cache at 2 hours (Firefox at 24): one preflight per origin,
# URL and header set for that long. Each answer is still checked against the list, so a
# removed origin loses access at once whatever a browser cached.
MAX_AGE_SECONDS = 7200


def cors_middleware(cors: CorsSettings) -> list[Middleware]:
    """The CORS layer for these settings; none when no other origin is allowed."""
    if not cors.enabled:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=cors.origins,
            allow_methods=METHODS,
            allow_headers=HEADERS,
            allow_credentials=cors.allow_credentials,
            expose_headers=EXPOSED,
            max_age=MAX_AGE_SECONDS,
        )
    ]
