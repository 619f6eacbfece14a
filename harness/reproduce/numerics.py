"""Portable numerics for the regression gate, and the keys that say what determines its bits.

The same seed gives the same bits on one machine, but not across machines: MKL takes other code
paths on Intel and AMD processors, oneDNN picks its convolution kernels (and their blocking) by
instruction set and cache size, ATen's vectorised kernels reduce in a width that follows the CPU,
and numpy/OpenBLAS dispatch per CPU as well. Measured between two machines of this project's kind (the
baseline recorded on an AMD EPYC, rerun on an Intel Xeon with AVX-512/AMX), the smoke
experiment's text-encoder loss differed by 1.4 % after 40 steps, and GAN training amplified that
to 19 % in FID: no tolerance separates such drift from a regression.

So the gate runs in a fresh process whose torch computations take code paths that every x86-64
CPU shares:
- ``ATEN_CPU_CAPABILITY=default``: ATen's non-vectorised kernels (one reduction order);
- ``MKL_CBWR=COMPATIBLE``: MKL's conditional-numerical-reproducibility branch, the one Intel
  documents as reproducible on non-Intel processors too (the AVX2 branch is Intel-only);
- oneDNN and NNPACK off (``torch.backends.mkldnn`` / ``nnpack``): convolutions become im2col +
  MKL GEMM;
- a fixed thread count, dynamic threading off (MKL_DYNAMIC, OMP_DYNAMIC).
What remains CPU-dependent is numpy's and OpenBLAS's dispatch, which only FID and KID pass
through (the covariance products, ``scipy.linalg.sqrtm``, the KID kernel sums); the gate compares
those within a stated tolerance when that part of the key differs.

Checked on the Intel machine: with numpy's AVX-512 targets disabled, MKL capped at AVX2 and
glibc's AVX-512 hardware capabilities masked, every torch-computed value of the smoke experiment
was bitwise unchanged; only KID moved (≤ 1.1e-6 relative).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

GATE_THREADS = 2

# Read by ATen, MKL and OpenMP when they start: set in the environment of a fresh process.
PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "MKL_DYNAMIC": "FALSE",
    "OMP_DYNAMIC": "FALSE",
    "OMP_NUM_THREADS": str(GATE_THREADS),
    "MKL_NUM_THREADS": str(GATE_THREADS),
}


def portable_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(PORTABLE_ENV)
    return env


def apply_portable_torch() -> None:
    """The in-process half of portable numerics (call before any torch computation)."""
    import torch

    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.enabled = False
    torch.set_num_threads(GATE_THREADS)


def torch_key() -> dict:
    """What decides the bits of torch computations in this process."""
    import torch

    return {
        "torch": torch.__version__,
        "aten_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_cbwr": os.environ.get("MKL_CBWR", "off"),
        "onednn": bool(torch.backends.mkldnn.enabled),
        "nnpack": bool(torch.backends.nnpack.enabled),
        "threads": torch.get_num_threads(),
    }


def _numpy_simd() -> list[str]:
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:  # numpy < 2
        from numpy.core import _multiarray_umath as umath
    features = getattr(umath, "__cpu_features__", {})
    return sorted(f for f in getattr(umath, "__cpu_dispatch__", []) if features.get(f))


def blas_key() -> dict:
    """What decides the bits of numpy/scipy computations (FID, KID): versions, the SIMD targets
    numpy dispatches to, and each BLAS library with the kernel it chose."""
    import numpy
    import scipy
    import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS, so threadpoolctl lists it)
    import threadpoolctl

    libraries = sorted(
        f"{lib.get('internal_api')} {lib.get('version')} {lib.get('architecture') or ''}".strip()
         for lib in threadpoolctl.threadpool_info() if lib.get("user_api") == "blas")
    return {"numpy": numpy.__version__, "scipy": scipy.__version__, "numpy_simd": _numpy_simd(),
            "blas": libraries}


def cpu_description() -> dict:
    """For the reader of a gate report; not part of any comparison rule."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    level = ("avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else
             "sse" if flags else "unknown")
    return {"model": model, "isa": level, "amx": "amx_tile" in flags, "cores": os.cpu_count(),
            "python": platform.python_version()}
