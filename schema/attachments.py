"""What every owner of proof files shares in GraphQL: the Attachment type, reading a
multipart upload, and batch loading of an owner's attachments.

An upload is read from its start by every reader: the multipart request spec lets `map`
put one file at several paths (one file for two variables, as extract-files sends a file
used twice), and each of them gets the whole file, not what an earlier reader left.

An input takes one file (`file`, `proof`) or a list (`files`, `proofs`, the spec's own
`files: [Upload!]!` with map paths `variables.files.0`, …): `read_uploads` reads either
before the transaction, and `Uploads.chosen()`, called in the mutation's action, answers
which were given or the coded userError for a mistake (both fields, neither when one is
required, a list longer than any owner may hold)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

import strawberry
from strawberry.dataloader import DataLoader

from deal_registration.attachments import (
    MAX_ATTACHMENTS_PER_OWNER,
    Attachment,
    AttachmentErrorCode,
    ProofFile,
    attachments_of_owners,
)
from infra.errors import DomainError
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


async def read_upload(upload: Any, max_bytes: int, field: str = "file") -> ProofFile:
    """At most max_bytes + 1 bytes of an upload (more means "too large"), from its start."""
    await upload.seek(0)
    data = await upload.read(max_bytes + 1)
    return ProofFile(filename=str(getattr(upload, "filename", "") or ""), data=data, field=field)


@dataclass(frozen=True)
class Uploads:
    """The files an input's one-file and list fields held, read; or what was wrong."""

    files: tuple[ProofFile, ...] = ()
    problem: DomainError | None = None

    def chosen(self) -> list[ProofFile]:
        """The files (each naming its input field: "file", "files.2"), or the userError."""
        if self.problem is not None:
            raise self.problem
        return list(self.files)


async def read_uploads(
    one: tuple[str, Any | None],
    many: tuple[str, list[Any] | None],
    *,
    required: bool,
    max_bytes: int,
) -> Uploads:
    """The files of the input's `one` field (name, upload) or its `many` field (name,
    uploads): at most one of them, exactly one when ``required``. Nothing is read when the
    input is refused, and a file that `map` put at several paths is read once (its bytes
    shared), so no list makes the server hold more than the request's files."""
    (one_name, single), (many_name, listed) = one, many
    if single is not None and listed is not None:
        return Uploads(problem=DomainError(
            AttachmentErrorCode.CONFLICTING_UPLOADS,
            f"Send one file in `{one_name}` or a list in `{many_name}`, not both.",
            many_name,
        ))  # fmt: skip
    if listed is not None and len(listed) > MAX_ATTACHMENTS_PER_OWNER:
        return Uploads(problem=DomainError(
            AttachmentErrorCode.TOO_MANY_ATTACHMENTS,
            f"Send at most {MAX_ATTACHMENTS_PER_OWNER} files.",
            many_name,
        ))  # fmt: skip
    if single is None and not listed:
        if not required:
            return Uploads()
        return Uploads(problem=DomainError(
            AttachmentErrorCode.REQUIRED,
            f"Send a file in `{one_name}` or a non-empty list in `{many_name}`.",
            one_name if listed is None else many_name,
        ))  # fmt: skip
    if single is not None:
        return Uploads(files=(await read_upload(single, max_bytes, one_name),))
    assert listed is not None
    read: dict[int, ProofFile] = {}
    files = []
    for index, upload in enumerate(listed):
        first = read.get(id(upload))
        if first is None:
            first = read[id(upload)] = await read_upload(upload, max_bytes)
        files.append(ProofFile(first.filename, first.data, f"{many_name}.{index}"))
    return Uploads(files=tuple(files))


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
