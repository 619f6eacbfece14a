"""Data parallelism through torch.distributed (torchrun sets the environment).

Each rank takes the r-th contiguous slice of every global batch and the r-th micro-batch seed;
gradients are averaged with all_reduce before each optimiser step. That is DistributedDataParallel's
arithmetic, done explicitly because a GAN step runs D three times (real, wrong, fake) before one
backward, which DDP's reducer (one forward per backward) does not support without
``static_graph`` tricks. BatchNorm statistics stay per rank unless ``train.sync_bn`` (GPU only):
so N ranks compute exactly what one process computes accumulating N micro-batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from harness.errors import UserError


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device_type: str) -> DistContext:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def make_grad_sync(ctx: DistContext):
    def sync(module: nn.Module) -> None:
        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad.div_(ctx.world_size)
    return sync


def broadcast_parameters(modules: dict[str, nn.Module]) -> None:
    for module in modules.values():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def average_stats(stats: dict[str, float], stop: bool, ctx: DistContext) -> tuple[dict, bool]:
    """Mean of every scalar over ranks, and whether any rank was asked to stop."""
    keys = sorted(stats)
    t = torch.tensor([stats[k] for k in keys] + [float(stop)], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    values = (t[:-1] / ctx.world_size).tolist()
    return dict(zip(keys, values, strict=True)), bool(t[-1] > 0)


def convert_sync_bn(modules: dict[str, nn.Module], device: torch.device) -> None:
    if device.type != "cuda":
        raise UserError("train.sync_bn needs GPU modules: PyTorch's SyncBatchNorm refuses CPU "
                        "modules; on CPU each rank keeps its own BatchNorm statistics")
    for name, module in modules.items():
        if name != "stage1G":
            nn.SyncBatchNorm.convert_sync_batchnorm(module)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
