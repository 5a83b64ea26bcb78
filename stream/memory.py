"""Handing freed heap memory back to the operating system; keeping the cyclic collector off
the live state.

A user's record is rewritten as bytes of a new size at each commit window, and glibc's malloc
keeps the freed blocks in the middle of its heap: resident memory then grows with the churn,
not with the live state. ``malloc_trim(0)`` returns those free pages (``MADV_DONTNEED``).
Where the C library is not glibc, :func:`trim_heap` does nothing.

The worker's state is acyclic (records, dicts and lists freed by reference counting), but
every live record is a dozen containers that the cyclic collector scans each time it passes:
its middle generation scanned the whole record cache, up to 270 ms at a time with 100k users,
and its young one each new record (~6% of the worker's time; ``docs/RESULTS.md``).
:func:`freeze_survivors` after each ingest batch moves what is alive then out of its reach.
What was alive at a batch's end and dies later in a cycle is then out of its reach too: the
web server's closed connections (a socket transport and its buffers each, ~1.4 a second while
the dashboard is polled) grew a soak's resident memory by 33% in 20 minutes. So
:class:`FullCollections` runs :func:`collect_frozen` every minute, or less often when a pass is
slow, so that the passes take at most half a percent of the worker's time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import time


@functools.cache
def _malloc_trim():  # -> the C function, or None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def trim_heap() -> bool:
    """Return the heap's free pages to the OS; True if any were (False also off glibc).

    >>> isinstance(trim_heap(), bool)
    True
    """
    fn = _malloc_trim()
    return bool(fn(0)) if fn is not None else False


def freeze_survivors() -> None:
    """Leave every object alive now to reference counting (``gc.freeze``, O(1)); objects made
    later are collected as before.

    >>> before = gc.get_freeze_count()
    >>> keep = [[] for _ in range(3)]
    >>> freeze_survivors()
    >>> gc.get_freeze_count() >= before + 3
    True
    """
    gc.freeze()


def collect_frozen() -> int:
    """Collect everything once, frozen objects included, then freeze the survivors again;
    returns how many unreachable objects were found.

    >>> a = []; a.append(a); freeze_survivors(); del a
    >>> collect_frozen() >= 1
    True
    """
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    return found


class FullCollections:
    """When to run :func:`collect_frozen`: at most every ``min_interval`` seconds, and
    spaced so that the passes take at most ``max_share`` of the time (a pass that took
    ``d`` seconds is followed by the next no sooner than ``d / max_share`` later).

    >>> fc = FullCollections(min_interval=60.0, max_share=0.005, now=0.0)
    >>> fc.due(59.0), fc.due(60.0), fc.done(60.0, took=0.1), fc.due(119.0)
    (False, True, 120.0, False)
    >>> fc.done(120.0, took=0.5)  # a slow pass: the next in 100 s, not 60
    220.0
    """

    def __init__(
        self, min_interval: float = 60.0, max_share: float = 0.005, now: float | None = None
    ):
        self.min_interval, self.max_share = min_interval, max_share
        self.next_at = (time.monotonic() if now is None else now) + min_interval
        self.passes = 0
        self.last_took = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def done(self, now: float, took: float) -> float:
        """Record a pass that ended at ``now`` and took ``took`` s; returns the next time."""
        self.passes += 1
        self.last_took = took
        self.next_at = now + max(self.min_interval, took / self.max_share)
        return self.next_at

    def run_if_due(self) -> int | None:
        """Collect if due (``collect_frozen``'s count), else None."""
        start = time.monotonic()
        if not self.due(start):
            return None
        found = collect_frozen()
        end = time.monotonic()
        self.done(end, end - start)
        return found
