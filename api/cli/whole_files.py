"""Files the commands write (``exports write --out``, ``audit export --out``,
``export-schema``): never seen part-written. The text goes to a partial file beside the
target (``.FILE.<random>.part``), which is synced and then renamed over it; a command
killed on the way leaves the target as it was (absent, or the last whole file) and a
``.part`` file no one reads; a failure the command sees removes the partial file itself."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


@contextlib.contextmanager
def whole_file(out: Path) -> Iterator[TextIO]:
    """A text file that becomes ``out`` only once the block ends without an error (written,
    synced, renamed into place, the rename synced): ``out`` is never seen part-written. A
    pipe or a device (``/dev/stdout``) is written as it is: it holds no file to replace. A
    symbolic link is followed (its target is replaced, the link stays); a file in a
    directory this process may not create files in is written in place, as before."""
    made: tuple[int, str] | None = None
    # Asked before resolving: /dev/stdout resolves to /proc/self/fd/1, and a pipe's to a
    # name ("pipe:[…]") that is no file, in a directory where no file can be made.
    if not out.exists() or out.is_file():
        out = out.resolve()
        directory = out.parent
        if not directory.is_dir():  # named as itself, not as the partial file's path in it
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(directory))
        with contextlib.suppress(PermissionError):
            made = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=directory)
    if made is None:
        with out.open("w", encoding="utf-8", newline="") as stream:
            yield stream
        return
    fd, name = made
    partial = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(fd, 0o666 & ~umask)  # as open() would have made it, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    handle = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
