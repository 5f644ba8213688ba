"""The GraphQL multipart request spec (https://github.com/jaydenseric/graphql-multipart-request-spec):
`operations` (JSON) and `map` (JSON: form field name -> list of object paths such as
"variables.file" or "variables.files.0") put each uploaded file into the operation.

strawberry's own placement trusts the shape of both; a `map` that is not an object, a path
through a missing key, a list index that is not a number or out of range ended in a plain-text
500. Here every malformed value is a 400 with a JSON body (code BAD_REQUEST, from the view).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cross_web import HTTPException
from starlette.exceptions import HTTPException as StarletteHTTPException


def _bad(reason: str) -> HTTPException:
    return HTTPException(400, f"Malformed multipart request: {reason}.")


def place_files(operations: Any, files_map: Any, files: Mapping[str, Any]) -> dict[str, Any]:
    """`operations` with each mapped path replaced by its file; 400 for anything malformed."""
    if not isinstance(operations, dict):
        raise _bad("`operations` must be a JSON object")
    if not isinstance(files_map, dict):
        raise _bad("`map` must be a JSON object of field names to lists of paths")
    placed = copy.deepcopy(operations)
    for field, paths in files_map.items():
        if field not in files:
            raise _bad(f"`map` names the file field {field!r}, which is not in the form")
        if not isinstance(paths, list) or not paths:
            raise _bad(f"`map[{field!r}]` must be a non-empty list of paths")
        for path in paths:
            if not isinstance(path, str) or not path.startswith("variables."):
                raise _bad(f"the path {path!r} must be a string starting with 'variables.'")
            *parents, last = path.split(".")
            target: Any = placed
            for key in parents:
                target = _step(target, key, path)
            _put(target, last, files[field], path)
    return placed


def _index(container: list[Any], key: str, path: str) -> int:
    if not key.isdigit() or int(key) >= len(container):
        raise _bad(f"the path {path!r} has no list item {key!r}")
    return int(key)


def _step(target: Any, key: str, path: str) -> Any:
    if isinstance(target, list):
        return target[_index(target, key, path)]
    if isinstance(target, dict) and key in target:
        return target[key]
    raise _bad(f"the path {path!r} does not lead to a value in `operations` (at {key!r})")


def _put(target: Any, key: str, file: Any, path: str) -> None:
    if isinstance(target, list):
        target[_index(target, key, path)] = file
    elif isinstance(target, dict) and key in target and target[key] is None:
        target[key] = file
    else:
        raise _bad(f"the path {path!r} must point at a null placeholder in `operations`")


async def parse_multipart(view: Any, request: Any) -> dict[str, Any]:
    """strawberry's AsyncBaseHTTPView.parse_multipart, placing files with `place_files`."""
    try:
        form = await request.get_form_data()
    except ValueError as e:
        raise HTTPException(400, "Unable to parse the multipart body") from e
    except StarletteHTTPException as e:
        # Starlette's form parser refuses a body (no boundary, too many parts, a field
        # over its size) with its own HTTPException: a plain-text 400 with no code.
        raise _bad(f"{e.detail.rstrip('.')}") from e
    operations = form.form.get("operations", "{}")
    files_map = form.form.get("map", "{}")
    if isinstance(operations, bytes | str):
        operations = view.parse_json(operations)
    if isinstance(files_map, bytes | str):
        files_map = view.parse_json(files_map)
    return place_files(operations, files_map, form.files)
