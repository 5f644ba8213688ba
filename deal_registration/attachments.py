"""Proof files (invoices) attached to submissions (sale claims, deal registrations): judged
by their bytes, hashed, named safely, stored through a ``Storage`` backend, and readable
only by whoever may see the record they belong to.

Attachments are generic over their owner (``owner_kind`` + ``owner_id``); who may read one
follows from who may read its owner (``attachment_access.readable_attachments``: kept apart,
since the owners' services store attachments through this module). The error codes below are
shared: each owner's error-code enum repeats them with the same values, so a payload maps
them onto its own enum.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from deal_registration.storage import Storage
from infra import passes
from infra.clock import Clock
from infra.db import Database, UTCDateTime
from infra.errors import DomainError, DomainErrors
from infra.ids import new_id

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 10 << 20
MAX_ATTACHMENTS_PER_OWNER = 10
# A stored file no row names is removed once it is this old: longer than any transaction
# that is still to record it may stay open.
ORPHAN_GRACE = timedelta(hours=1)
# Orphans come only from a process killed mid-upload: a pass a day is plenty, and each pass
# lists every stored file.
ORPHAN_SWEEP_INTERVAL = 24 * 3600.0

# (magic bytes, content type, extension): the only types accepted, judged by content.
_SIGNATURES = (
    (b"%PDF-", "application/pdf", ".pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._() -]+")


class AttachmentErrorCode(StrEnum):
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    EMPTY_FILE = "EMPTY_FILE"
    UNSUPPORTED_FILE_TYPE = "UNSUPPORTED_FILE_TYPE"
    INVALID_FILENAME = "INVALID_FILENAME"
    TOO_MANY_ATTACHMENTS = "TOO_MANY_ATTACHMENTS"
    REQUIRED = "REQUIRED"
    CONFLICTING_UPLOADS = "CONFLICTING_UPLOADS"


class Attachment(SQLModel, table=True):
    """A file attached to a submission, generic over its owner (``owner_kind`` names the
    owning table, e.g. "sale_claim" or "deal_registration"). The bytes live in a storage
    backend under ``storage_key``."""

    __tablename__ = "attachment"
    __table_args__ = (
        Index("ix_attachment_owner", "owner_kind", "owner_id"),
        Index("ix_attachment_vendor_id_sha256", "vendor_id", "sha256"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    vendor_id: uuid.UUID = Field(foreign_key="vendor.id")
    owner_kind: str = Field(max_length=32)
    owner_id: uuid.UUID
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=64)
    size: int
    sha256: str = Field(max_length=64)
    storage_key: str = Field(max_length=255)
    uploaded_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    # The request that stored it: the files of one request share it (an attach mutation's
    # idempotency key names it as its result). Null for files stored before it was kept.
    upload_id: uuid.UUID | None = None
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


@dataclass(frozen=True)
class ProofFile:
    """An uploaded file, read, and the input field it came in (its errors name it): "file"
    or "proof" for an input's one file, "files.2" for the third of a list."""

    filename: str
    data: bytes
    field: str = "file"

    @property
    def input_field(self) -> str:
        """The input field itself ("files" for "files.2")."""
        return self.field.partition(".")[0]


def sniff(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) from the file's first bytes, or None."""
    for magic, content_type, extension in _SIGNATURES:
        if data.startswith(magic):
            return content_type, extension
    return None


def safe_filename(raw: str, extension: str, field: str = "file") -> str:
    """A display name that is safe in a Content-Disposition header and on any disk. Names
    that try to climb directories are refused; the extension follows the content."""
    name = unicodedata.normalize("NFKC", raw).strip()
    if (
        not name
        or "/" in name
        or "\\" in name
        or ".." in name
        or any(unicodedata.category(ch).startswith("C") for ch in name)
    ):
        raise DomainError(
            AttachmentErrorCode.INVALID_FILENAME,
            "The file name must be a plain name without folders, '..' or control characters.",
            field,
        )
    stem = name.rsplit(".", 1)[0] if "." in name else name
    stem = _UNSAFE.sub("_", stem).strip(" ._")[:100] or "proof"
    return stem + extension


def check_proof(file: ProofFile, max_bytes: int) -> tuple[str, str, str]:
    """Validate a proof file; returns (safe filename, content type, sha256). Its errors name
    the file's input field."""
    if len(file.data) > max_bytes:
        raise DomainError(
            AttachmentErrorCode.FILE_TOO_LARGE,
            f"A proof file may be at most {max_bytes // (1 << 20)} MiB.",
            file.field,
        )
    if not file.data:
        raise DomainError(AttachmentErrorCode.EMPTY_FILE, "The file is empty.", file.field)
    sniffed = sniff(file.data)
    if sniffed is None:
        raise DomainError(
            AttachmentErrorCode.UNSUPPORTED_FILE_TYPE,
            "Proof must be a PDF, PNG or JPEG file.",
            file.field,
        )
    content_type, extension = sniffed
    filename = safe_filename(file.filename, extension, file.field)
    return filename, content_type, hashlib.sha256(file.data).hexdigest()


def proof_errors(
    files: Sequence[ProofFile], max_bytes: int, *, noun: str = "submission"
) -> list[DomainError]:
    """What is wrong with each of the files (every file judged, one error each at most),
    and a list longer than any owner may hold."""
    errors: list[DomainError] = []
    if len(files) > MAX_ATTACHMENTS_PER_OWNER:
        errors.append(_too_many(files[0].input_field, noun))
    for file in files:
        try:
            check_proof(file, max_bytes)
        except DomainError as error:
            errors.append(error)
    return errors


def check_proofs(files: Sequence[ProofFile], max_bytes: int, *, noun: str = "submission") -> None:
    """All or nothing: DomainErrors naming every bad file, before anything is stored."""
    if errors := proof_errors(files, max_bytes, noun=noun):
        raise DomainErrors(errors)


def proof_digest(files: Sequence[ProofFile]) -> str | list[str] | None:
    """The files' part of an idempotency fingerprint: None without files, one file's SHA-256
    (as before lists: keys taken with one file keep their fingerprint), else each one's."""
    digests = [hashlib.sha256(f.data).hexdigest() for f in files]
    return None if not digests else digests[0] if len(digests) == 1 else digests


def _too_many(field: str, noun: str) -> DomainError:
    return DomainError(
        AttachmentErrorCode.TOO_MANY_ATTACHMENTS,
        f"A {noun} holds at most {MAX_ATTACHMENTS_PER_OWNER} files.",
        field,
    )


async def ensure_room(
    session: AsyncSession,
    owner_kind: str,
    owner_id: uuid.UUID,
    *,
    noun: str,
    files: Sequence[ProofFile],
) -> None:
    """Refuse the files when the owner would hold more than the maximum with them (lock the
    owner first, so two uploads cannot both squeeze in)."""
    held = len(await attachments_of(session, owner_kind, owner_id))
    if files and held + len(files) > MAX_ATTACHMENTS_PER_OWNER:
        raise _too_many(files[0].input_field, noun)


async def store_attachment(
    session: AsyncSession,
    clock: Clock,
    storage: Storage,
    *,
    vendor_id: uuid.UUID,
    owner_kind: str,
    owner_id: uuid.UUID,
    file: ProofFile,
    uploaded_by_id: uuid.UUID | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    upload_id: uuid.UUID | None = None,
) -> Attachment:
    """Check and store a file, and record it against its owner. Call it after every other
    check of the operation, so a refused request leaves no file behind."""
    filename, content_type, digest = check_proof(file, max_bytes)
    attachment = Attachment(
        vendor_id=vendor_id,
        owner_kind=owner_kind,
        owner_id=owner_id,
        filename=filename,
        content_type=content_type,
        size=len(file.data),
        sha256=digest,
        storage_key="",
        uploaded_by_id=uploaded_by_id,
        upload_id=upload_id,
        created_at=clock.now(),
    )
    attachment.storage_key = f"{vendor_id}/{attachment.id}"
    session.add(attachment)
    await session.flush()
    await storage.put(attachment.storage_key, file.data, content_type)
    return attachment


async def store_attachments(
    session: AsyncSession,
    clock: Clock,
    storage: Storage,
    *,
    vendor_id: uuid.UUID,
    owner_kind: str,
    owner_id: uuid.UUID,
    files: Sequence[ProofFile],
    uploaded_by_id: uuid.UUID | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[Attachment]:
    """``store_attachment`` for each file, all or nothing: every file is judged first (a bad
    one stores none), and when the store refuses one, the files already written for this
    request are removed before the error rolls the transaction back (the sweep would remove
    them a day later; a retry should not find the store fuller). The files share one
    ``upload_id`` (see ``uploaded``)."""
    check_proofs(files, max_bytes)
    upload_id = new_id()
    stored: list[Attachment] = []
    try:
        for file in files:
            attachment = await store_attachment(
                session, clock, storage, vendor_id=vendor_id, owner_kind=owner_kind,
                owner_id=owner_id, file=file, uploaded_by_id=uploaded_by_id, max_bytes=max_bytes,
                upload_id=upload_id,
            )  # fmt: skip
            stored.append(attachment)
    except Exception:
        for attachment in stored:
            try:
                await storage.delete(attachment.storage_key)
            except Exception:  # the sweep removes it later
                log.warning("could not remove %s after a failed upload", attachment.storage_key)
        raise
    return stored


async def attachments_of(
    session: AsyncSession, owner_kind: str, owner_id: uuid.UUID
) -> list[Attachment]:
    rows = await session.exec(
        select(Attachment)
        .where(Attachment.owner_kind == owner_kind, Attachment.owner_id == owner_id)
        .order_by(col(Attachment.id))
    )
    return list(rows)


def uploaded(stored: Sequence[Attachment]) -> uuid.UUID:
    """The id of the upload that stored these files (one ``store_attachments`` call)."""
    [upload_id] = {a.upload_id for a in stored}
    assert upload_id is not None
    return upload_id


async def attachments_of_upload(
    session: AsyncSession, owner_kind: str, owner_id: uuid.UUID, upload_id: uuid.UUID
) -> list[Attachment]:
    """The files one request stored on the owner, in the order sent (what a retry of it
    under its idempotency key answers with). The caller has read the owner through its
    readable statement: whoever may read an owner may read its files."""
    rows = await session.exec(
        select(Attachment)
        .where(
            Attachment.owner_kind == owner_kind,
            Attachment.owner_id == owner_id,
            Attachment.upload_id == upload_id,
        )
        .order_by(col(Attachment.id))
    )
    return list(rows)


async def attachments_of_owners(
    session: AsyncSession, owner_kind: str, owner_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Attachment]]:
    rows = await session.exec(
        select(Attachment)
        .where(Attachment.owner_kind == owner_kind, col(Attachment.owner_id).in_(owner_ids))
        .order_by(col(Attachment.id))
    )
    grouped: dict[uuid.UUID, list[Attachment]] = {}
    for row in rows:
        grouped.setdefault(row.owner_id, []).append(row)
    return grouped


async def sweep_orphans(db: Database, storage: Storage, *, grace: timedelta = ORPHAN_GRACE) -> int:
    """Remove the stored files (and partly written ones) that no attachment row names and
    that were written more than ``grace`` ago: what a process killed between writing a
    file and committing its row, or a transaction that did not commit after writing one,
    left behind. Returns how many were removed. The age is by the wall clock, as the store
    keeps it (never the app's clock, which tests move). A key is ``<vendor>/<attachment
    id>``: rows are found by their primary key."""
    keys = await storage.keys(written_before=datetime.now(UTC) - grace)
    removed = 0
    for start in range(0, len(keys), 500):
        chunk = {i: key for key in keys[start : start + 500] if (i := _attachment_id(key))}
        async with db.session() as session:
            named = set(
                await session.exec(
                    select(Attachment.storage_key).where(col(Attachment.id).in_(list(chunk)))
                )
            )
        for key in chunk.values():
            if key not in named:
                await storage.delete(key)
                removed += 1
    if removed:
        log.info("removed %d stored files that no attachment names", removed)
    return removed


def _attachment_id(key: str) -> uuid.UUID | None:
    """The attachment a stored key is named for; None for a name we did not write (left
    alone)."""
    try:
        return uuid.UUID(key.rpartition("/")[2])
    except ValueError:
        return None


async def run_orphan_sweep(
    db: Database, storage: Storage, interval: float = ORPHAN_SWEEP_INTERVAL
) -> None:
    """``sweep_orphans`` every ``interval`` seconds (wherever the clock jobs run; with local
    storage on several hosts, also ``channelboard attachments sweep`` on each host). The
    first pass waits a random part of the interval: processes started together do not all
    list the store at once (a listing reads every stored file's name)."""
    await passes.every("attachment sweep", interval, lambda: sweep_orphans(db, storage))
