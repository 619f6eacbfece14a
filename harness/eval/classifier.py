"""The dataset classifier: the harness's stand-in for the paper's fine-tuned Inception.

Trained on real images of the evaluation classes (the paper's birds model covers the 50 test
classes), with a held-out share of each class's images for its accuracy. Registered with
torch-fidelity as the extractor ``dataset-classifier``: ``logits`` for IS, ``pool`` (the pooled
features) for FID/KID. Presets: ``small`` (a CNN for CPU) and ``inception`` (torchvision's
Inception-v3 at 299×299, trained from scratch, or from a local torchvision checkpoint).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from tqdm import tqdm

from harness.atomic import write_text_atomic
from harness.core.compute_dtype import as_compute
from harness.errors import UserError
from harness.serialization import load_torch_checked, save_torch_atomic

FORMAT = "stackgan-bench/classifier/1"
EXTRACTOR_NAME = "dataset-classifier"


@dataclass(frozen=True)
class ClassifierOptions:
    preset: str = "small"  # small | inception
    split: str = "test"  # whose classes (and real images) it learns
    steps: int | None = None  # None: the preset's default (DEFAULT_STEPS)
    batch_size: int = 64
    lr: float = 1e-3
    held_out: float = 0.2  # share of each class's images kept for the accuracy
    seed: int = 0
    init_checkpoint: str | None = None  # inception: a local torchvision state dict to start from
    width: int = 32  # small preset: channels of the first block (x2 per block)
    # Input size (default 64 for small, 299 for inception): a comparison is judged at the
    # largest output size among its models, by a classifier trained at that size.
    size: int | None = None

    @property
    def image_size(self) -> int:
        if self.size is not None:
            return self.size
        return 299 if self.preset == "inception" else 64

    def resolved_steps(self) -> int:
        return self.steps if self.steps is not None else DEFAULT_STEPS[self.preset]


# small: 600 steps already reach 100% held-out accuracy on synthbirds' 50 test classes.
DEFAULT_STEPS = {"small": 800, "inception": 20000}


class SmallClassifier(nn.Module):
    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()
        layers, c = [], 3
        for out in (width, width * 2, width * 4, width * 8):
            layers += [nn.Conv2d(c, out, 3, 1, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(True),
                       nn.Conv2d(out, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(True)]
            c = out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, n_classes)

    def forward_features(self, x):
        pool = self.features(x).mean(dim=(2, 3))
        return pool, self.fc(pool)

    def forward_all(self, x) -> dict[str, torch.Tensor]:
        """The pooled last block, the logits, and ``mid``: the third block's activations averaged
        over space. FID and KID read ``mid``: the metric-validity test (eval --validate) found the
        last block's pooled features nearly blind to a 2× loss of resolution at 128 px, the third
        block's not (it still sees textures)."""
        h = self.features[:18](x)
        mid = h.mean(dim=(2, 3))
        pool = self.features[18:](h).mean(dim=(2, 3))
        return {"pool": pool, "mid": mid, "logits": self.fc(pool)}


class InceptionClassifier(nn.Module):
    def __init__(self, n_classes: int, init_checkpoint: str | None = None):
        super().__init__()
        from torchvision.models import inception_v3

        self.net = inception_v3(weights=None, aux_logits=False, init_weights=True)
        if init_checkpoint:
            state = torch.load(init_checkpoint, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state, strict=False)
        self.net.fc = nn.Linear(self.net.fc.in_features, n_classes)

    def forward_features(self, x):
        n = self.net
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
                     "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(n, name)(x)
        pool = n.avgpool(x).flatten(1)
        return pool, n.fc(pool)

    def forward_all(self, x) -> dict[str, torch.Tensor]:
        pool, logits = self.forward_features(x)
        return {"pool": pool, "mid": pool, "logits": logits}  # Inception: its own pool for FID


def build(options: ClassifierOptions, n_classes: int, with_init: bool = False) -> nn.Module:
    if options.preset == "small":
        return SmallClassifier(n_classes, options.width)
    if options.preset == "inception":
        return InceptionClassifier(n_classes, options.init_checkpoint if with_init else None)
    raise UserError(f"classifier preset {options.preset!r}: choose small or inception")


def pool_dim(model: nn.Module) -> int:
    """Width of the features FID/KID read (``mid``)."""
    if isinstance(model, InceptionClassifier):
        return model.net.fc.in_features
    return model.features[12].out_channels


def prepare(images_u8: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 N×3×H×W -> float in [-1, 1] at size×size (bilinear): the extractor's preprocessing."""
    x = as_compute(images_u8) / 127.5 - 1
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """TISE's calibration: the T minimising the NLL of softmax(logits / T) on held-out data."""
    from scipy.optimize import minimize_scalar

    logits = logits.double()

    def nll(log_t: float) -> float:
        return F.cross_entropy(logits / math.exp(log_t), labels).item()

    return float(math.exp(minimize_scalar(nll, bounds=(-6.0, 6.0), method="bounded",
                                          options={"xatol": 1e-8}).x))


def _split_held_out(class_ids: np.ndarray, share: float) -> tuple[list[int], list[int]]:
    train, held = [], []
    for c in np.unique(class_ids):
        members = np.flatnonzero(class_ids == c).tolist()
        k = max(1, int(round(len(members) * share))) if len(members) > 1 else 0
        held += members[len(members) - k:]
        train += members[: len(members) - k]
    return train, held


def held_out_indices(classifier_path, data_root, split: str = "test") -> list[int]:
    """The images of ``split`` the classifier held out of its training (its ``held_out`` share
    of each class; all of them when it trained on another split)."""
    from harness.data.sources import load_index

    ckpt = load_classifier(classifier_path)[1]
    options = ClassifierOptions(**ckpt["options"])
    index = load_index(data_root, split)
    if options.split != split:
        return list(range(len(index)))
    return sorted(_split_held_out(index.class_ids, options.held_out)[1])


def train_classifier(data_root: str | os.PathLike, out_dir: str | os.PathLike,
                     options: ClassifierOptions = ClassifierOptions(), progress: bool = True) -> dict:
    from harness.data.real_images import load_real_tensor
    from harness.data.sources import dataset_fingerprint, load_index
    from harness.eval.inputs import random_crop_flip
    from harness.runner.seeding import seed_all

    seed_all(options.seed)
    index = load_index(data_root, options.split)
    classes = sorted(int(c) for c in np.unique(index.class_ids))
    labels = torch.tensor([classes.index(int(c)) for c in index.class_ids])
    size = options.image_size
    load = int(size * 76 / 64)
    images = load_real_tensor(data_root, options.split, load, progress)
    train_ids, held_ids = _split_held_out(index.class_ids, options.held_out)
    model = build(options, len(classes), with_init=True)
    opt = torch.optim.Adam(model.parameters(), lr=options.lr)
    gen = torch.Generator().manual_seed(options.seed)
    train_t = torch.tensor(train_ids)
    for _ in tqdm(range(options.resolved_steps()), desc="training classifier",
                  disable=not progress):
        model.train()
        pick = train_t[torch.randint(0, len(train_t), (options.batch_size,), generator=gen)]
        x = prepare(random_crop_flip(images[pick], size, gen), size)
        loss = F.cross_entropy(model.forward_features(x)[1], labels[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        held = torch.tensor(held_ids)
        logits = torch.cat([model.forward_features(prepare(images[held[i:i + 256]], size))[1]
                            for i in range(0, len(held), 256)])
        accuracy = (logits.argmax(1) == labels[held]).float().mean().item()
    temperature = fit_temperature(logits, labels[held])
    metrics = {"held_out_accuracy": accuracy, "temperature": temperature,
               "chance": 1 / len(classes), "classes": len(classes),
               "train_images": len(train_ids), "held_out_images": len(held_ids),
               "split": options.split, "data_fingerprint": dataset_fingerprint(data_root)}
    out = Path(out_dir)
    save_torch_atomic({"format": FORMAT, "options": asdict(options), "classes": classes,
                       "metrics": metrics, "state": model.state_dict()}, out / "classifier.pt")
    import json

    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


def load_classifier(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    ckpt = load_torch_checked(path, FORMAT, "classifier checkpoint")
    options = ClassifierOptions(**ckpt["options"])
    model = build(options, len(ckpt["classes"]))
    model.load_state_dict(ckpt["state"])
    model.eval()
    return model, ckpt


class DatasetClassifierExtractor(FeatureExtractorBase):
    """torch-fidelity extractor around a trained dataset classifier (weights path = its .pt)."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if not feature_extractor_weights_path:
            raise UserError("the dataset-classifier extractor needs a classifier checkpoint "
                            "(stackgan-bench classifier train … ; then --classifier PATH)")
        self.model, ckpt = load_classifier(feature_extractor_weights_path)
        self.size = ClassifierOptions(**ckpt["options"]).image_size
        self.temperature = float(ckpt["metrics"].get("temperature", 1.0))

    @staticmethod
    def get_provided_features_list():
        # logits_calibrated = logits / T, the temperature fitted on held-out real images (IS*);
        # mid: the pooled third block (SmallClassifier.forward_all), what FID and KID read.
        return ("pool", "mid", "logits", "logits_calibrated")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "mid", "kid": "mid", "prc": "mid"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 64, 64, dtype=torch.uint8)

    def forward(self, x):
        out = self.model.forward_all(prepare(x, self.size))
        out["logits_calibrated"] = out["logits"] / self.temperature
        return tuple(out[name] for name in self.features_list)


def register() -> None:
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(EXTRACTOR_NAME, DatasetClassifierExtractor)
