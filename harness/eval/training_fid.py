"""In-training validation: the FID of a fixed set of generated images against the real test
images, through the dataset classifier's pooled features at the evaluation size, every
``train.validate_every`` steps (logged as ``val.fid``). It shows whether a run has reached a
plateau.

The images come from fixed captions (the first caption of test images spread over the split)
and fixed noise, with the model in eval mode: validating reads the model and changes nothing
that training computes (a test checks the weights are bitwise the same with and without it).
Generated images are resized to the evaluation size with bicubic interpolation in torch (the
evaluation proper resizes with PIL): the curve is for comparing a run with itself.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from harness.config.schema import RunConfig
from harness.core import generate_batch, step_seed
from harness.eval.classifier import load_classifier, prepare
from harness.families import family_of
from harness.runner.sample import caption_items, to_uint8


def _fid_stats(features: np.ndarray) -> dict:
    from torch_fidelity.metric_fid import fid_features_to_statistics

    return fid_features_to_statistics(torch.from_numpy(features))


class FidValidator:
    def __init__(self, cfg: RunConfig, classifier: str, size: int, images: int = 256, seed: int = 0):
        from harness.data.real_images import load_real_tensor

        self.size, self.seed = size, seed
        self.classifier, ckpt = load_classifier(classifier)
        from harness.eval.classifier import ClassifierOptions

        self.classifier_size = ClassifierOptions(**ckpt["options"]).image_size
        self.conditions = family_of(cfg).conditions(cfg)
        items = caption_items(cfg, "test", 1, None, self.conditions)
        picks = np.linspace(0, len(items) - 1, min(images, len(items))).round().astype(int)
        self.items = [items[i] for i in picks]
        real = load_real_tensor(cfg.data.root, "test", size, progress=False)
        self.real_stats = _fid_stats(self._features(real))

    @torch.no_grad()
    def _features(self, images_u8: torch.Tensor) -> np.ndarray:
        pools = [self.classifier.forward_all(prepare(images_u8[i:i + 128], self.classifier_size))["mid"]
                 for i in range(0, len(images_u8), 128)]
        return torch.cat(pools).double().numpy()

    @torch.no_grad()
    def __call__(self, model) -> dict[str, float]:
        from torch_fidelity.metric_fid import fid_statistics_to_metric

        model.eval()
        try:
            images = []
            for start in range(0, len(self.items), 64):
                chunk = self.items[start:start + 64]
                seeds = [step_seed(self.seed, start + k, 0) for k in range(len(chunk))]
                given = {name: torch.stack([item[name] for item in chunk]) for name in self.conditions}
                out = generate_batch(model, torch.stack([item["embedding"] for item in chunk]), seeds,
                                     given)
                final = out.get("stage2", out["stage1"]).float().cpu()
                if final.shape[-1] != self.size:
                    final = F.interpolate(final, size=(self.size, self.size), mode="bicubic",
                                          align_corners=False).clamp(-1, 1)
                images += [to_uint8(img).permute(2, 0, 1) for img in final]
        finally:
            model.train()
        fake_stats = _fid_stats(self._features(torch.stack(images)))
        fid = fid_statistics_to_metric(self.real_stats, fake_stats, False)["frechet_inception_distance"]
        return {"val.fid": float(fid)}
