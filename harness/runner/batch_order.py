"""A batch sampler whose order depends only on (seed, epoch) and that can start mid-epoch.

Each element is ``(dataset index, sample seed)``: the sample seed fixes the sample's augmentation
and caption choice. With ``world_size`` > 1, rank r gets the r-th contiguous slice of every global
batch, matching a single process that splits the same batch into micro-batches with ``chunk``.
Every model's epoch is a permutation of the images; Reed's Lua loaders draw each step's samples
at random with replacement (GAN-INT-CLS: a class first): docs/fidelity.md rows 9 and 14.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler

from harness.core import step_seed


class ResumableBatchSampler(Sampler):
    def __init__(self, num_samples: int, batch_size: int, seed: int, drop_last: bool = True,
                 rank: int = 0, world_size: int = 1):
        if num_samples < batch_size and drop_last:
            raise ValueError(f"{num_samples} samples cannot fill one batch of {batch_size}")
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by {world_size} ranks")
        self.n, self.batch_size, self.seed = num_samples, batch_size, seed
        self.drop_last, self.rank, self.world = drop_last, rank, world_size
        self.epoch, self.start_batch = 0, 0

    def batches_per_epoch(self) -> int:
        full = self.n // self.batch_size
        return full if self.drop_last or self.n % self.batch_size == 0 else full + 1

    def set_position(self, epoch: int, batch_index: int) -> None:
        self.epoch, self.start_batch = epoch, batch_index

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch

    def __iter__(self):
        gen = torch.Generator().manual_seed(step_seed(self.seed, self.epoch, 0x5A5A))
        order = torch.randperm(self.n, generator=gen).tolist()
        per_rank = self.batch_size // self.world
        for b in range(self.start_batch, self.batches_per_epoch()):
            positions = range(b * self.batch_size, min((b + 1) * self.batch_size, self.n))
            mine = list(positions)[self.rank * per_rank:(self.rank + 1) * per_rank]
            yield [(order[p], step_seed(self.seed, self.epoch, 1_000_003 + p)) for p in mine]
