"""Handing freed heap memory back to the operating system.

A user's record is rewritten as bytes of a new size at each commit window, and glibc's malloc
keeps the freed blocks in the middle of its heap: resident memory then grows with the churn,
not with the live state. ``malloc_trim(0)`` returns those free pages (``MADV_DONTNEED``).
Where the C library is not glibc, :func:`trim_heap` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


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
