"""What every owner of proof files shares in GraphQL: the Attachment type, reading a
multipart upload, and batch loading of an owner's attachments.

An upload is read from its start by every reader: the multipart request spec lets `map`
put one file at several paths (one file for two variables, as extract-files sends a file
used twice), and each of them gets the whole file, not what an earlier reader left."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, BinaryIO

import strawberry
from strawberry.dataloader import DataLoader

from deal_registration.attachments import Attachment, ProofFile, attachments_of_owners
from schema.context import Context
from schema.loaders import list_loader


@strawberry.type(name="Attachment", description="A proof file (PDF, PNG or JPEG).")
class AttachmentType:
    id: strawberry.ID
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime

    @strawberry.field(
        description="GET this path with your Authorization header to download the file."
    )
    def download_url(self) -> str:
        return f"/attachments/{self.id}"

    @classmethod
    def from_model(cls, row: Attachment) -> AttachmentType:
        return cls(
            id=strawberry.ID(str(row.id)), filename=row.filename, content_type=row.content_type,
            size=row.size, sha256=row.sha256, created_at=row.created_at,
        )  # fmt: skip


async def read_upload(upload: Any, max_bytes: int) -> ProofFile:
    """At most max_bytes + 1 bytes of an upload (more means "too large"), from its start."""
    await upload.seek(0)
    data = await upload.read(max_bytes + 1)
    return ProofFile(filename=str(getattr(upload, "filename", "") or ""), data=data)


def upload_source(upload: Any) -> BinaryIO:
    """An upload's file, at its start, for a reader that streams it (an import)."""
    source: BinaryIO = upload.file
    source.seek(0)
    return source


def owner_attachments(ctx: Context, owner_kind: str) -> DataLoader[uuid.UUID, list[Attachment]]:
    """The attachments of owners of one kind, batched per operation (no caching: a
    mutation's payload sees the file it just added). The caller has already decided that
    the owner is readable."""
    return list_loader(
        ctx,
        f"attachments.{owner_kind}",
        lambda ids: attachments_of_owners(ctx.session, owner_kind, ids),
    )
