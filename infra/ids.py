"""Time-ordered UUIDs (version 7), so primary keys double as a stable creation order.

Keyset pagination orders by id alone; a v7 id sorts by its millisecond timestamp and then
by a monotonic counter, so ids created later in the same process always sort later.
"""

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_id() -> uuid.UUID:
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter >= 1 << 12:  # counter exhausted: borrow the next millisecond
                ms += 1
                _counter = 0
        else:
            _counter = 0
        _last_ms = ms
        counter = _counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= counter << 64
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand
    return uuid.UUID(int=value)


class IdBlock:
    """Ids for the rows of one bulk write: one fresh UUIDv7 plus a counter in its random
    bits. Unique (one base per block, distinct counters), time-ordered and in write order,
    at a fraction of a microsecond each (``new_id`` takes a lock and a clock read)."""

    def __init__(self) -> None:
        base = new_id().int
        self.high = base & ~((1 << 62) - 1)
        self.next_low = (base & ((1 << 62) - 1)) % ((1 << 62) - (1 << 40))

    def next(self) -> uuid.UUID:
        self.next_low += 1
        return uuid.UUID(int=self.high | self.next_low)
