"""The two speed options every model honours (``train.autocast_bf16``, ``train.channels_last``):
one place, so that a flag means the same in StackGAN and in every baseline."""

from __future__ import annotations

import contextlib

import torch


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def autocast(enabled: bool, device: torch.device):
    """bf16 autocast on ``device`` where ``enabled``, else nothing: the context every forward
    pass of a training step runs in (backward runs outside it, as torch.autocast asks)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX). Elsewhere bf16 autocast
    still runs, on oneDNN's emulation or its reference kernels, and is slower than fp32."""
    try:
        import torch.cpu

        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # an older or newer torch: read the flags (Linux)
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                flags = next((line.split() for line in f if line.startswith("flags")), [])
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags


def hardware_has_bf16() -> bool:
    """bf16 in hardware where training runs: a CUDA device with bf16, else this CPU."""
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return cpu_has_native_bf16()
