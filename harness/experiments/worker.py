"""One run of ``--executor local`` in its own process: ``python -m harness.experiments.worker
CONFIG.yaml [--resume]``. Threads come from ``OMP_NUM_THREADS``, the device from
``CUDA_VISIBLE_DEVICES`` (set by the pool); prints one JSON line with the result."""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    import torch

    from harness.config.load import from_yaml_file
    from harness.runner.trainer import train

    threads = os.environ.get("OMP_NUM_THREADS")
    if threads and threads.isdigit():
        torch.set_num_threads(int(threads))
    result = train(from_yaml_file(argv[0]), resume="--resume" in argv[1:], progress=False)
    print(json.dumps({"steps": result.steps, "stopped_by_signal": result.stopped_by_signal}))
    return 0  # a stop by signal is in the JSON line; the pool reports it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
