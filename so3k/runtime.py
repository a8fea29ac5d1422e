"""Process-wide settings that make CPU evaluation fast.

glibc's malloc serves every block above 32 MB with a fresh mmap and unmaps it on free, so each
large pair tensor (about 40 MB for 1,500 waters) is zero-filled by the kernel page by page on
every call: on large systems more than half of the time was system time. With mmap disabled
and a high trim threshold, freed blocks stay in the heap and are reused; the price is a higher
resident size (the heap keeps its peak). SO3K_MALLOC_TUNING=0 turns this off.
"""

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_MAX = -4
_state = {"tuned": None}


def tune_allocator() -> bool:
    """Keep freed memory in the heap for reuse (glibc only; once per process). Returns whether it is on."""
    if _state["tuned"] is not None:
        return _state["tuned"]
    tuned = False
    if os.environ.get("SO3K_MALLOC_TUNING", "1") != "0" and sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):  # not glibc (e.g. musl): leave the allocator alone
            mallopt = None
        if mallopt is not None:
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            tuned = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    _state["tuned"] = tuned
    return tuned
