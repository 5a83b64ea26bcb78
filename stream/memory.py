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
:func:`freeze_survivors` after each ingest batch moves what is alive then out of its reach;
:func:`collect_frozen`, run rarely, collects the rare cycles among them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc


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
