"""Host memory: keep freed arrays' pages in the process instead of handing them back.

A training step allocates and frees the same large arrays every time (im2col columns,
Winograd planes, activations of 10-40 MB). glibc serves blocks of 32 MB and more (and,
after a trim, smaller ones too) with fresh pages from the kernel, and each first touch of
a fresh page is a page fault that zeroes it: on the 2-core VM these benchmarks ran on,
DCGAN's D1 layer (forward + backward, batch 64) took 3600 faults and 31.5 ms per call by
default and none and 22.3 ms with the settings below; D2 85 -> 73 ms (its 38 MB planes
came as 2 MB huge pages, zeroed on every call). Peak resident memory is unchanged (the
DCGAN step's high-water mark 530 vs 528 MB); what changes is that memory freed after the
peak stays with the process for its next step rather than going back to the system.

Set at import, only on glibc, and only where the user has not tuned malloc already
(any MALLOC_*_ variable or GLIBC_TUNABLES), so a user's setting wins;
``TINYGAN_MALLOC=default`` leaves glibc's defaults alone. benchmarks/NOTES.md (item 21)
has the measurements.
"""

from __future__ import annotations

import ctypes
import os

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1  # free memory at the top of the heap kept before trimming it
M_MMAP_MAX = -4  # how many blocks may be served by mmap; 0 serves all from the heap

_USER_SETTINGS = (
    "GLIBC_TUNABLES",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_MAX_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
)


def keep_freed_memory(environ: dict | None = None) -> bool:
    """Tell glibc's malloc to serve every block from the heap and never trim it. Returns
    whether it did (False off glibc, where the user's environment tunes malloc, or with
    TINYGAN_MALLOC=default)."""
    environ = os.environ if environ is None else environ
    if environ.get("TINYGAN_MALLOC") == "default":
        return False
    if any(name in environ for name in _USER_SETTINGS):
        return False
    try:
        process = ctypes.CDLL(None)  # the symbols already loaded, libc's among them
        mallopt = process.mallopt
        process.gnu_get_libc_version  # noqa: B018  (only glibc has it)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt's value is an int: the largest trim threshold it takes is 2^31 - 1
    return bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1)) and bool(mallopt(M_MMAP_MAX, 0))
