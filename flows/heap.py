"""Memory this process freed, given back to the system.

glibc's malloc keeps what a program frees for its next allocations, and returns only the
free memory at the top of its heap. The steps of a national run free hundreds of megabytes
in the middle of it (the matcher's pairs, the unpickled results of the forked processes,
lists of a million pointers), which then counted in the process's resident memory until it
ended: at 1M, 120 to 180 MB at the merge's and the locate step's peaks (measured with
mallinfo2). `malloc_trim` hands those pages back (Dask's workers do the same).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


def give_back() -> bool:
    """Return the free pages of the C heap to the system; whether the C library could. It
    takes milliseconds, and costs nothing later: a page given back is mapped again on
    demand."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
