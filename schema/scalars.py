"""Input scalars that judge their value at coercion, so a bad value is a coded
validation error before any resolver runs (never an error deep in a service). DateTime and
Date: ``schema.instants``."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.file_uploads import Upload
from strawberry.types.scalar import ScalarDefinition, scalar


def parse_upload(value: object) -> object:
    """Only a file of a multipart request (GraphQL multipart spec) is an upload; a string
    or object in the JSON variables is not."""
    if not isinstance(value, UploadFile):
        raise StrawberryInputCoercionError(
            "Value cannot represent an Upload: send the file as a part of a multipart "
            "request (GraphQL multipart request spec) and map it to this variable."
        )
    return value


INPUT_SCALARS: dict[object, ScalarDefinition] = {
    Upload: scalar(
        name="Upload",
        description="Represents a file upload.",
        serialize=lambda v: v,
        parse_value=parse_upload,
    ),
}
