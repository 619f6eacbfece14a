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
