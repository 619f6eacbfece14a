"""What every model package imports: the model interface the harness drives, the seed of a step,
the optimiser config, gradient norms and the one batch-generation loop.

``stackgan``, ``baselines`` and a model of your own import from here and from nothing else in
``harness``; this package imports only torch and numpy, so a model never pulls in the runner or
the CLI (a model may raise ``harness.errors.UserError``, which imports nothing).
"""

from harness.core.generation import generate_batch
from harness.core.interface import REQUIRED, TRAINED_NETWORKS, TextToImageModel
from harness.core.optim import OptimConfig, grad_norm
from harness.core.seeds import step_seed
from harness.core.speed import autocast, memory_format

__all__ = ["OptimConfig", "REQUIRED", "TRAINED_NETWORKS", "TextToImageModel", "autocast",
           "generate_batch", "grad_norm", "memory_format", "step_seed"]
