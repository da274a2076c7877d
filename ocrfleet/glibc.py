"""glibc's allocator controls, for the places that return freed memory to the system (OpenVINO's
recogniser, fine-tuning, the memory soak). Each is a no-op where the C library is not glibc."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_MMAP_THRESHOLD = -3  # mallopt parameter


@functools.lru_cache(maxsize=None)
def function(name: str):
    """The C library's function ``name``, or None (no C library, or not glibc's)."""
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def malloc_trim() -> bool:
    """``malloc_trim(0)``: free heap pages go back to the OS. False where unavailable."""
    trim = function("malloc_trim")
    return bool(trim(0)) if trim is not None else False


def mmap_threshold(nbytes: int) -> bool:
    """``mallopt(M_MMAP_THRESHOLD, nbytes)``: allocations of ``nbytes`` and more are mmapped (and
    returned on free); also stops glibc raising the threshold by itself. False where unavailable."""
    mallopt = function("mallopt")
    return bool(mallopt(M_MMAP_THRESHOLD, nbytes)) if mallopt is not None else False
