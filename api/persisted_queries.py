"""Automatic persisted queries over HTTP (and the websockets: api.ws_persisted): the
protocol Apollo Client's PersistedQueryLink and urql's persistedExchange speak
(``extensions.persistedQuery = {version: 1, sha256Hash}``). A client first sends only the
hash of its document; an unknown hash is answered ``PersistedQueryNotFound`` (code
``PERSISTED_QUERY_NOT_FOUND``, the message those clients match), and the client sends the
document with its hash, which is checked and, once the operation has run, remembered:
later requests, and GETs a CDN may cache, carry the hash alone.

Documents are kept in Redis (shared by every API process, each for ``ttl`` after its last
registration) behind a small cache per process. Only a document that ran (parsed and
validated; no request error) and fits ``max_document_bytes`` is kept, and only for an
authenticated caller: an anonymous caller may use what is kept but not fill the store.
Redis out of reach is no failure here: a lookup finds nothing (the client sends the
document) and a registration is skipped."""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from datetime import timedelta
from typing import Any

from graphql import GraphQLError

from infra.redis import AnyRedis, Keys, redis_unreachable

log = logging.getLogger(__name__)

VERSION = 1
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def _error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


class PersistedQueries:
    """Documents by the SHA-256 of their text (lower-case hex)."""

    def __init__(
        self,
        redis: AnyRedis,
        keys: Keys,
        *,
        max_document_bytes: int,
        ttl: timedelta = timedelta(days=7),
        cached_bytes: int = 4 << 20,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._max_bytes = max_document_bytes
        self._ttl = ttl
        # The documents last used, up to ``cached_bytes`` of text in all (not a count: a
        # few hundred documents at the size limit would otherwise hold tens of MiB).
        self._cached: OrderedDict[str, str] = OrderedDict()
        self._cached_bytes = 0
        self._budget = cached_bytes

    @staticmethod
    def requested(extensions: dict[str, Any] | None) -> bool:
        return bool(extensions) and "persistedQuery" in extensions  # type: ignore[operator]

    async def resolve(
        self, query: str | None, extensions: dict[str, Any]
    ) -> tuple[str | None, str | None, GraphQLError | None]:
        """The document to run, the hash to register it under once it ran (None: nothing
        to register), or the error that answers the request."""
        persisted = extensions.get("persistedQuery")
        if not isinstance(persisted, dict) or persisted.get("version") != VERSION:
            return (
                None,
                None,
                # Only version 1 ({version: 1, sha256Hash}) is served. The message is what
                # the clients match (urql's exactly): they then send full documents.
                _error("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED"),
            )
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
            return (
                None,
                None,
                _error(
                    "`extensions.persistedQuery.sha256Hash` must be the SHA-256 of the query, "
                    "as 64 hexadecimal digits.",
                    "BAD_REQUEST",
                ),
            )
        digest = digest.lower()
        if query is not None:
            if hashlib.sha256(query.encode()).hexdigest() != digest:
                return (
                    None,
                    None,
                    _error(
                        "The query's SHA-256 is not `extensions.persistedQuery.sha256Hash`: hash "
                        "the exact text sent as `query` (UTF-8).",
                        "PERSISTED_QUERY_HASH_MISMATCH",
                    ),
                )
            return query, digest, None
        found = await self._lookup(digest)
        if found is None:
            # The message is what the clients match on: they then send the document.
            return None, None, _error("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
        return found, None, None

    def has(self, digest: str) -> bool:
        """Whether this process keeps a document under ``digest`` (without asking Redis)."""
        return digest in self._cached

    async def register(self, digest: str, query: str, *, if_new: bool = False) -> None:
        """Keep ``query`` under ``digest`` (checked by ``resolve``) for ``ttl``. ``if_new``:
        not again while this process has it (a websocket client such as Apollo's sends the
        document and its hash with every subscription: one Redis write per document and
        process, not one per subscriber; should Redis lose it, a client told
        ``PersistedQueryNotFound`` sends the document again and it is kept anew)."""
        if len(query.encode()) > self._max_bytes or (if_new and digest in self._cached):
            return
        self._remember(digest, query)
        try:
            await self._redis.set(self._key(digest), query, ex=self._ttl)
        except Exception as exc:
            if not redis_unreachable(exc):
                raise
            log.warning("persisted query not kept: Redis unavailable: %s", exc)

    async def _lookup(self, digest: str) -> str | None:
        found = self._cached.get(digest)
        if found is not None:
            self._cached.move_to_end(digest)
            return found
        try:
            stored = await self._redis.get(self._key(digest))
        except Exception as exc:
            if not redis_unreachable(exc):
                raise
            log.warning("persisted query not looked up: Redis unavailable: %s", exc)
            return None
        if stored is None:
            return None
        text = stored.decode() if isinstance(stored, bytes) else str(stored)
        # A stored document is checked again: the store is shared, not trusted blindly.
        if hashlib.sha256(text.encode()).hexdigest() != digest:
            return None
        self._remember(digest, text)
        return text

    def _remember(self, digest: str, query: str) -> None:
        if digest in self._cached:
            self._cached.move_to_end(digest)
            return
        self._cached[digest] = query
        self._cached_bytes += len(query)
        while self._cached_bytes > self._budget:
            _, dropped = self._cached.popitem(last=False)
            self._cached_bytes -= len(dropped)

    def _key(self, digest: str) -> str:
        return self._keys("apq", digest)
