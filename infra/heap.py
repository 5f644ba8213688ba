"""The start-up heap kept out of the garbage collector's full passes."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Everything a process built while starting (modules, the GraphQL schema, SQLAlchemy's
    and strawberry's tables: about 175,000 objects in an API process) lives as long as the
    process. The collector's full passes would otherwise rescan all of it (~100 ms a pass,
    every pass), pausing an API process's live pushes, or a dispatcher's live lane, while
    they run. Collected first, so no garbage is frozen with it; objects made later are
    collected as usual, and frozen ones still go when their last reference does."""
    gc.collect()
    gc.freeze()
