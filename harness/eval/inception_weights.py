"""The standard FID/IS Inception weights, from a local file only, verified before loading.

The file must have the full SHA-256 of the standard one (torch-fidelity's
pt_inception-2015-12-05 release; an 8-hex prefix, as in the
file name, can be brute-forced). ``expected_sha256`` may pin another full hash, or be "any" to
accept other weights — results are then marked non-standard and carry the file's hash. Whatever
the hash, the file is read by ``harness.eval.inception_fast`` with ``weights_only=True`` (tensors
only) and torch-fidelity is handed the state dict: no path ever reaches its
``torch.load(weights_only=False)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.data.fingerprint import sha256_file
from harness.errors import UserError

FILE_NAME = "pt_inception-2015-12-05-6726825d.pth"
HASH_PREFIX = "6726825d"
STANDARD_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
ENV_VAR = "STACKGAN_BENCH_INCEPTION_WEIGHTS"
HOW_TO_GET = (
    f"get {FILE_NAME} (the pytorch-fid / torch-fidelity port of TensorFlow's 2015-12-05 "
    "Inception, ~91 MB; it is published with the pytorch-fid releases on GitHub) on a machine "
    f"with network access, copy it here, and pass --inception-weights PATH or set {ENV_VAR}, "
    "or place it in the torch hub cache (~/.cache/torch/hub/checkpoints/)")


@dataclass(frozen=True)
class InceptionWeights:
    path: Path | None
    sha256: str | None
    standard: bool
    unavailable_reason: str | None = None

    @property
    def available(self) -> bool:
        return self.path is not None


def _hub_cache_path() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / FILE_NAME


def resolve_inception_weights(path: str | os.PathLike | None = None,
                              expected_sha256: str | None = None) -> InceptionWeights:
    """Find and verify the weights; unavailable (with the reason) when no file is found.

    A file that is found but fails verification is an error: it is never silently replaced.
    """
    candidates = [Path(path)] if path else []
    if not path and os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    if not path:
        candidates.append(_hub_cache_path())
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        where = ", ".join(str(c) for c in candidates)
        if path:
            raise UserError(f"{path}: Inception weights file not found; {HOW_TO_GET}")
        return InceptionWeights(None, None, False,
                                f"no Inception weights file (looked in: {where}); {HOW_TO_GET}")
    digest = sha256_file(found)
    if expected_sha256 == "any":
        return InceptionWeights(found, digest, digest == STANDARD_SHA256)
    if expected_sha256:
        if digest != expected_sha256.lower():
            raise UserError(f"{found}: SHA-256 {digest} does not match --inception-sha256 "
                            f"{expected_sha256}; refusing to load it")
        return InceptionWeights(found, digest, digest == STANDARD_SHA256)
    if digest != STANDARD_SHA256:
        raise UserError(
            f"{found}: SHA-256 {digest} is not that of {FILE_NAME} ({STANDARD_SHA256}); refusing "
            "to use it. Use the standard file, or --inception-sha256 any to evaluate with other "
            f"weights (results are then marked non-standard); {HOW_TO_GET}")
    return InceptionWeights(found, digest, True)
