"""The floating-point type computations run in: torch's default dtype.

Training, sampling and evaluation run in float32; the regression gate sets float64 as the default
(``harness.reproduce.numerics``) so that the bits it compares depend on the code, not on the CPU's
kernels. Data enters the models through these helpers, so that no float32 rounding is left
inside a float64 run (a rounded value is a place where a last-bit difference between two CPUs
becomes a whole-ulp one).
"""

from __future__ import annotations

import numpy as np
import torch


def compute_dtype() -> torch.dtype:
    return torch.get_default_dtype()


def numpy_compute_dtype() -> type:
    return np.float64 if torch.get_default_dtype() == torch.float64 else np.float32


def as_compute(x: torch.Tensor) -> torch.Tensor:
    """``x`` (integer pixels, or floats read from a file) in the compute dtype."""
    return x.to(torch.get_default_dtype())
