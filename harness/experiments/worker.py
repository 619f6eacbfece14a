"""One training run away from the process that planned it.

``train_job`` is what every executor runs: a worker process of ``--executor local``
(``python -m harness.experiments.worker CONFIG.yaml [--resume] [--validate JSON]``, one JSON line
with the result on stdout) and a SLURM job of ``--executor slurm`` (submitit pickles a reference
to this function; the node imports it from the same checkout). Threads come from
``OMP_NUM_THREADS``, the device from ``CUDA_VISIBLE_DEVICES``, both set by whoever started the
process, so the config is the serial run's and a later serial command sees the run as done.
"""

from __future__ import annotations

import json
import os
import sys


def build_validator(cfg, validate: dict | None):
    """The in-training validation ``validate`` describes ({classifier, size, images}), or None."""
    if not validate:
        return None
    from harness.eval.training_fid import FidValidator

    return FidValidator(cfg, validate["classifier"], int(validate["size"]),
                        images=int(validate.get("images", 256)))


def train_job(config_yaml: str, resume: bool = False, validate: dict | None = None,
              threads: int | None = None) -> dict:
    """``validate``: the in-training validation of ``reproduce`` ({classifier, size, images}),
    built here because a validator holds the real images' statistics and is not sent around.
    ``threads``: torch's intra-op threads (default ``OMP_NUM_THREADS``, else SLURM's CPUs per task)."""
    import torch

    from harness.config.load import from_yaml_text
    from harness.runner.trainer import train

    threads = threads or next((int(v) for v in (os.environ.get("OMP_NUM_THREADS"),
                                                os.environ.get("SLURM_CPUS_PER_TASK"))
                               if v and v.isdigit()), None)
    if threads:
        torch.set_num_threads(threads)
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "WORLD_SIZE" not in os.environ:
        # One SLURM job of several tasks (--slurm-nodes / --slurm-tasks-per-node): each task is a
        # rank of one data-parallel run; submitit derives the env:// rendezvous from SLURM's
        # variables (the first node's host, a port from the job id). The trainer picks
        # cuda:LOCAL_RANK itself, so the visible devices are left alone.
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    cfg = from_yaml_text(config_yaml)
    result = train(cfg, resume=resume, progress=False, validator=build_validator(cfg, validate))
    return {"steps": result.steps, "stopped_by_signal": result.stopped_by_signal}


def main(argv: list[str]) -> int:
    from pathlib import Path

    validate = None
    if "--validate" in argv:
        validate = json.loads(argv[argv.index("--validate") + 1])
    result = train_job(Path(argv[0]).read_text(encoding="utf-8"), "--resume" in argv[1:], validate)
    print(json.dumps(result))
    return 0  # a stop by signal is in the JSON line; the pool reports it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
