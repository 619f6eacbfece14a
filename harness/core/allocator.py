"""Keep freed memory in the process instead of handing it back to the kernel (glibc only).

glibc serves every allocation above its mmap threshold (128 KiB, raised dynamically up to
32 MiB) with a fresh ``mmap`` and returns it with ``munmap`` when torch frees the tensor. A
training step allocates the same large activations every step (a Stage-II step at batch 16,
256 px: tensors of 16 x 64 x 256 x 256 floats, 268 MB), so each step page-faults them in
again: 1.4-1.6 million minor faults and 3-4 s of kernel time in a 12-13 s step on the 2-core AMD
EPYC. With both thresholds raised, freed blocks stay in the heap and the next step reuses them
(no faults once the heap has settled, after a step or two): measured process against process,
1.13x [1.05, 1.22] on that step and 1.11x [1.03, 1.18] on Stage-I at batch 64
(``benchmarks/test_bench_reference.py``, README "Benchmarks"). Nothing but where the bytes live
changes: the same kernels run on the same values (claims-scale runs trained with it matched
runs trained without it in every G and D tensor).

Why by hand: torch has no caching allocator for CPU tensors, and jemalloc/tcmalloc would have to
be preloaded before Python starts (``LD_PRELOAD``), which a ``pip install`` cannot arrange.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt(3) parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to 1 GiB come from the heap and up to 1 GiB of free heap top is kept; a larger
# tensor is still mapped and unmapped on its own (a paper-scale Stage-II batch of 64).
_RETAIN_BYTES = 1 << 30

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process, once. Returns whether they are
    raised (False where the C library is not glibc: macOS, musl, Windows)."""
    global _applied
    if _applied is None:
        _applied = _set_thresholds()
    return _applied


def _set_thresholds() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        if not hasattr(libc, "gnu_get_libc_version"):  # musl: mallopt is a stub that does nothing
            return False
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # The trim threshold first: once the mmap threshold is fixed, glibc stops raising it for us.
    return bool(mallopt(_M_TRIM_THRESHOLD, _RETAIN_BYTES)) and bool(mallopt(_M_MMAP_THRESHOLD,
                                                                           _RETAIN_BYTES))
