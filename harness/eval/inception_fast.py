"""torch-fidelity's Inception-v3 feature extractor with its convolutions in channels_last.

Same module, same weights, same preprocessing (torch-fidelity's TF-compatible resize and
(x - 128) / 128); only the memory layout of the weights changes, which oneDNN runs about 1.5×
faster on this CPU. Features agree with the default layout to float rounding (tested at 1e-4
relative); it is registered as ``inception-v3-compat-cl`` and used for ``inception-v3-compat``.
"""

from __future__ import annotations

import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

NAME = "inception-v3-compat-cl"


def read_weights(path) -> dict:
    """The Inception state dict, read with ``weights_only=True``: a file that is not plain
    tensors is refused, whatever its hash, and none of its code runs."""
    from harness.errors import UserError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: Inception weights file not found") from None
    except Exception as exc:  # noqa: BLE001 - a pickle with code, or a damaged file
        raise UserError(f"{path}: not a plain state dict of Inception weights; refusing it "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"{path}: not a state dict of Inception weights")
    return state


class ChannelsLastInceptionV3(FeatureExtractorInceptionV3):
    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        from unittest import mock

        from harness.errors import UserError

        if not feature_extractor_weights_path:  # torch-fidelity would download them
            raise UserError("the Inception extractor needs a local weights file")
        state = read_weights(feature_extractor_weights_path)
        # torch-fidelity reads its weights with torch.load(weights_only=False); it gets the state
        # dict read above instead, so the file is never unpickled in full.
        with mock.patch("torch_fidelity.feature_extractor_inceptionv3.torch.load",
                        side_effect=lambda *a, **k: state):
            super().__init__(name, features_list,
                             feature_extractor_weights_path=feature_extractor_weights_path, **kwargs)
        self.to(memory_format=torch.channels_last)


def register() -> None:
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(NAME, ChannelsLastInceptionV3)


def random_weights_file(path) -> str:
    """A randomly initialised state dict in the standard file's format: for tests and
    benchmarks of speed and agreement, where the real weights are not available."""
    from unittest import mock

    with mock.patch("torch_fidelity.feature_extractor_inceptionv3.torch.load", return_value=None), \
            mock.patch.object(FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None):
        module = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                             feature_extractor_weights_path="unused")
    # PyTorch's default init with BatchNorm statistics left at (0, 1) makes activations vanish
    # through 40+ layers; BN statistics measured on one batch keep every layer at unit scale, so
    # features differ between images as real ones do.
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batch
    module.train()
    batch = torch.randint(0, 256, (16, 3, 299, 299), dtype=torch.uint8)
    with torch.no_grad():
        module(batch)
    module.eval()
    # And logits that vary between images like a trained classifier's (std ~3), so IS is not ~1:
    # IS reads bias-free logits, and non-negative pooled features give every class a large
    # common offset, so the mean-feature direction is removed from the weights before scaling.
    with torch.no_grad():
        feats = module(batch)[0].double()
        mean = feats.mean(0)
        w = module.fc.weight.double()
        w = w - torch.outer(w @ mean, mean) / (mean @ mean)
        spread = (feats @ w.T).std(0).mean().clamp_min(1e-12)
        module.fc.weight.copy_((w * (3.0 / spread)).float())
    torch.save(module.state_dict(), path)
    return str(path)
