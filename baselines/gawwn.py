"""GAWWN (Reed et al., NIPS 2016, "Learning What and Where to Draw") as the Lua code of
reedscot/nips2016 defines and trains it: the bounding-box model
(main_cub_bbox.lua, ``gawwn.conditioning: bbox``) and the keypoint model
(main_cub_keypoints.lua, ``keypoints``, CUB's 15 parts), both at 128×128 with NGF = NDF = 128
and batch 16 (scripts/train_cub_*.sh).

Text and location meet on a 16×16 grid. The box enters through a spatial transformer
(``F.affine_grid`` + ``F.grid_sample``, bilinear, zero outside, corners aligned as Torch's
AffineGridGeneratorBHWD/BilinearSamplerBHWD): G warps the tiled text into the box and pastes
(shrinks) its local feature map into the box with the inverse of the box's crop transform; D
crops the box region out of its features and resizes it to 16×16.

Bounding-box G: text Linear 1024 -> 4·ngf (shared by both pathways).
- Global: the tiled text warped into the box, convs 4ngf@8 -> 4ngf@4 -> 4ngf@1; with
  Linear(z -> 4ngf) + ReLU; transposed convs 8ngf@4 -> 4ngf@8 -> 2ngf@16.
- Local: [Linear z -> 4ngf, text] + ReLU -> transposed conv 8ngf@4 + residual -> 4ngf@8 +
  residual -> 2ngf@16, pasted into the box, ReLU.
- Output: 3×3 transposed conv 4ngf -> 2ngf, then 2ngf@32 -> ngf... up to 3@128, tanh.
Bounding-box D: image trunk ndf@64 -> ndf@32 -> 2ndf@16 -> 3×3 2ndf (one module, used by both
pathways), text Linear 1024 -> nt + LeakyReLU.
- Region: [features, tiled text] -> 3×3 2ndf -> the box cropped to 16×16 -> 1×1 2ndf -> 1×1 ndf
  -> spatial mean -> LeakyReLU.
- Global: features -> 4ndf@8 -> 8ndf@4; the tiled text warped with the box, 4ndf@8 -> ndf@4;
  joined, 1×1 4ndf, 4×4 -> ndf.
- [region, global] -> Linear ndf + BN + LeakyReLU -> Linear 1.
Keypoint G and D replace the box by 15 one-hot 16×16 part maps (a part at round(x·16), if
visible): they gate the region pathway (sum over parts, clipped to 1), enter the global pathway
through convs, and are concatenated to the region features.

Training (both): D = BCE(real, 1) + 0.5·BCE(wrong, 0) + 0.5·BCE(fake, 0), the wrong pair being
the same real image and location with in-batch shuffled text; G = BCE(D(fake), 1) through the
very D output of the D step (the Lua code backpropagates ``netD.output`` for G). Adam 2e-4,
β1 0.5, LR × 0.5 every 100 epochs; 4 of the first 9 captions averaged. Conv biases are kept
(zero at init), Linear layers keep Torch7's default init. One box per image (``num_elt = 1`` in
train_cub_bbox.sh; the Lua code can average several). Other differences: docs/fidelity.md
rows 13–19 (epochs are permutations of the images: Lua draws each step's samples with
replacement; 8-bit images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import OneStageModel
from baselines.gan_int_cls import discriminator_loss
from harness.core import OptimConfig, step_seed
from harness.core.compute_dtype import compute_dtype
from stackgan.layers import BottleneckResidual, init_weights
from stackgan.losses import bce_real

GRID = 16  # where text meets the box or the parts
CONDITIONINGS = ("bbox", "keypoints")
MIN_BOX = 1.0 / 128  # a box clipped to nothing by the crop keeps one pixel (its inverse exists)


@dataclass
class GawwnConfig:
    conditioning: str = "bbox"  # bbox: main_cub_bbox.lua; keypoints: main_cub_keypoints.lua
    z_dim: int = 100
    text_dim: int = 1024
    t_dim: int = 128  # D's text features (nt)
    gf_dim: int = 128  # ngf
    df_dim: int = 128  # ndf (train_cub_bbox.sh / train_cub_keypoints.sh: NDF=128)
    image_size: int = 128
    num_parts: int = 15
    cls_weight: float = 0.5
    # D's last hidden layer: Linear -> BatchNorm1d -> LeakyReLU, as main_cub_bbox.lua. Run on
    # separate real, wrong and fake batches, that BatchNorm removes each batch's mean before the
    # logit. False drops it (a deviation, docs/fidelity.md row 32; issue 25's diagnosis).
    d_head_bn: bool = True
    # Fractions (x0, y0, x1, y1) of the image: the box for captions that come without one
    # (free text); test captions use their image's box.
    default_box: list[float] = field(default_factory=lambda: [0.15, 0.2, 0.85, 0.85])

    def validate(self) -> list[str]:
        errors = []
        if self.conditioning not in CONDITIONINGS:
            errors.append(f"gawwn.conditioning {self.conditioning!r} is not one of {CONDITIONINGS}")
        if self.image_size not in (64, 128, 256):
            errors.append(f"gawwn.image_size: {self.image_size} is not 64, 128 or 256")
        for name in ("gf_dim", "df_dim", "t_dim", "z_dim", "num_parts"):
            if getattr(self, name) < 1:
                errors.append(f"gawwn.{name} must be positive")
        if not 0 <= self.cls_weight < 1:
            errors.append("gawwn.cls_weight must be in [0, 1)")
        box = self.default_box
        if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
            errors.append(f"gawwn.default_box: {list(box)} is not [x0, y0, x1, y1] with "
                          "0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
        return errors


# ----------------------------------------------------------------------------- spatial transformer
def box_theta(boxes: torch.Tensor) -> torch.Tensor:
    """(B, 4) boxes (x0, y0, x1, y1) as fractions -> (B, 2, 3) affine maps from an output grid
    to the box (the crop transform of the Lua loader: scale = box size, translation = box
    centre, in [-1, 1] coordinates). The Lua loader works in 1-based integer pixels of the
    150-pixel image; continuous fractions here (sub-pixel; docs/fidelity.md row 16)."""
    x0, y0, x1, y1 = boxes.unbind(1)
    theta = boxes.new_zeros(boxes.shape[0], 2, 3)
    theta[:, 0, 0] = (x1 - x0).clamp(min=MIN_BOX)
    theta[:, 1, 1] = (y1 - y0).clamp(min=MIN_BOX)
    theta[:, 0, 2] = x0 + x1 - 1
    theta[:, 1, 2] = y0 + y1 - 1
    return theta


def invert_box_theta(theta: torch.Tensor) -> torch.Tensor:
    """The inverse of a scale-and-translate map (CropInvert.lua): pastes instead of crops."""
    inv = torch.zeros_like(theta)
    inv[:, 0, 0] = 1 / theta[:, 0, 0]
    inv[:, 1, 1] = 1 / theta[:, 1, 1]
    inv[:, 0, 2] = -theta[:, 0, 2] / theta[:, 0, 0]
    inv[:, 1, 2] = -theta[:, 1, 2] / theta[:, 1, 1]
    return inv


def warp(maps: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling of ``maps`` at ``theta`` applied to a same-size output grid, zero
    outside the input, corner pixels at ±1 (as Torch's BHWD spatial transformer)."""
    grid = F.affine_grid(theta, list(maps.shape), align_corners=True)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def crop_box(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The box region of each map, resized to the map's size."""
    return warp(maps, box_theta(boxes))


def paste_into_box(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Each map shrunk into its box, zero outside."""
    return warp(maps, invert_box_theta(box_theta(boxes)))


def keypoint_maps(parts: torch.Tensor, size: int = GRID) -> torch.Tensor:
    """(B, P, 3) parts (x, y fractions, visible) -> (B, P, size, size) one-hot maps: a visible
    part (visibility > 0.1) marks cell (round(y·size), round(x·size)), 1-based and clipped to
    [1, size], as the Lua loader does."""
    b, p, _ = parts.shape
    col = (parts[..., 0] * size + 0.5).floor().clamp(1, size).long() - 1
    row = (parts[..., 1] * size + 0.5).floor().clamp(1, size).long() - 1
    maps = parts.new_zeros(b, p, size * size)
    maps.scatter_(2, (row * size + col)[..., None], (parts[..., 2:3] > 0.1).to(parts.dtype))
    return maps.view(b, p, size, size)


# ----------------------------------------------------------------------------- layers
def _conv(cin: int, cout: int, k: int, s: int = 1, p: int = 0) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, s, p)  # Torch's convs keep a (zero-initialised) bias


def _deconv(cin: int, cout: int, k: int = 4, s: int = 2, p: int = 1) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, s, p)


def _bn_relu(c: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]


def _bn_lrelu(c: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.LeakyReLU(0.2, inplace=True)]


def _steps(large: int, small: int) -> int:
    return int(math.log2(large // small))


def _output_head(cin: int, ngf: int, image_size: int, keypoints: bool) -> list[nn.Module]:
    """Transposed convs from the 16×16 grid to the image: 2ngf@32 -> ngf@64 -> 3@128 (keypoint
    G: from 4ngf), 32 channels before the last in the box G (as in the Lua code)."""
    n = _steps(image_size, GRID)
    chans = [cin] + ([ngf * 2, ngf] if keypoints else [ngf, 32])[: n - 1] + [3]
    layers: list[nn.Module] = []
    for k in range(n):
        layers.append(_deconv(chans[k], chans[k + 1]))
        layers += _bn_relu(chans[k + 1]) if k < n - 1 else [nn.Tanh()]
    return layers


def _image_trunk(image_size: int, ndf: int) -> nn.Sequential:
    """D's image trunk to 2ndf@16: 4×4 s2 convs (ndf, ndf … without BN, the last one 2ndf with
    BN), then 3×3 2ndf (imgGlobalD)."""
    n = _steps(image_size, GRID)
    layers: list[nn.Module] = [_conv(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
    for _ in range(n - 2):
        layers += [_conv(ndf, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
    layers += [_conv(ndf, ndf * 2, 4, 2, 1), *_bn_lrelu(ndf * 2),
               _conv(ndf * 2, ndf * 2, 3, 1, 1), *_bn_lrelu(ndf * 2)]
    return nn.Sequential(*layers)


def _head(ndf: int, bn: bool = True) -> nn.Sequential:
    norm = [nn.BatchNorm1d(ndf)] if bn else []
    return nn.Sequential(nn.Linear(ndf * 2, ndf), *norm, nn.LeakyReLU(0.2, inplace=True), nn.Linear(ndf, 1))


def _tile(t: torch.Tensor, size: int) -> torch.Tensor:
    return t[:, :, None, None].expand(-1, -1, size, size)


# ----------------------------------------------------------------------------- box model
class BoxGenerator(nn.Module):
    def __init__(self, cfg: GawwnConfig):
        super().__init__()
        g = cfg.gf_dim
        self.text = nn.Linear(cfg.text_dim, g * 4)
        self.global_text = nn.Sequential(_conv(g * 4, g * 4, 4, 2, 1), *_bn_relu(g * 4),
                                         _conv(g * 4, g * 4, 4, 2, 1), *_bn_relu(g * 4),
                                         _conv(g * 4, g * 4, 4), *_bn_relu(g * 4))
        self.global_noise = nn.Sequential(nn.Linear(cfg.z_dim, g * 4), nn.ReLU(inplace=True))
        self.global_up = nn.Sequential(_deconv(g * 8, g * 8, 4, 1, 0), *_bn_relu(g * 8),
                                       _deconv(g * 8, g * 4), *_bn_relu(g * 4),
                                       _deconv(g * 4, g * 2), *_bn_relu(g * 2))
        self.local_noise = nn.Linear(cfg.z_dim, g * 4)
        self.local_up = nn.Sequential(
            BottleneckResidual(nn.Sequential(_deconv(g * 8, g * 8, 4, 1, 0), nn.BatchNorm2d(g * 8)),
                               g * 2, g * 8, leaky=False, bias=True),
            BottleneckResidual(nn.Sequential(_deconv(g * 8, g * 4), nn.BatchNorm2d(g * 4)),
                               g, g * 4, leaky=False, bias=True),
            _deconv(g * 4, g * 2), nn.BatchNorm2d(g * 2))
        self.out = nn.Sequential(_deconv(g * 4, g * 2, 3, 1, 1), *_bn_relu(g * 2),
                                 *_output_head(g * 2, g, cfg.image_size, keypoints=False))
        init_weights(self, linears=False, zero_conv_bias=True)

    def forward(self, embedding: torch.Tensor, noise: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        t = self.text(embedding)
        where = paste_into_box(_tile(t, GRID), box)  # the text, warped into the box
        glob = torch.cat([self.global_noise(noise), self.global_text(where).flatten(1)], 1)
        glob = self.global_up(glob[:, :, None, None])
        local = F.relu(torch.cat([self.local_noise(noise), t], 1))
        local = F.relu(paste_into_box(self.local_up(local[:, :, None, None]), box))
        return self.out(torch.cat([glob, local], 1))


class BoxDiscriminator(nn.Module):
    def __init__(self, cfg: GawwnConfig):
        super().__init__()
        d, nt = cfg.df_dim, cfg.t_dim
        self.image = _image_trunk(cfg.image_size, d)
        self.text = nn.Sequential(nn.Linear(cfg.text_dim, nt), nn.LeakyReLU(0.2, inplace=True))
        self.region_in = nn.Sequential(_conv(d * 2 + nt, d * 2, 3, 1, 1), *_bn_lrelu(d * 2))
        self.region_out = nn.Sequential(_conv(d * 2, d * 2, 1), *_bn_lrelu(d * 2), _conv(d * 2, d, 1))
        self.global_image = nn.Sequential(_conv(d * 2, d * 4, 4, 2, 1), *_bn_lrelu(d * 4),
                                          _conv(d * 4, d * 8, 4, 2, 1), *_bn_lrelu(d * 8))
        self.global_text = nn.Sequential(_conv(nt, d * 4, 4, 2, 1), *_bn_relu(d * 4),
                                         _conv(d * 4, d, 4, 2, 1), *_bn_relu(d))
        self.global_joint = nn.Sequential(_conv(d * 9, d * 4, 1), *_bn_lrelu(d * 4),
                                          _conv(d * 4, d, 4), *_bn_lrelu(d))
        self.head = _head(d, cfg.d_head_bn)
        init_weights(self, linears=False, zero_conv_bias=True)

    def forward(self, images: torch.Tensor, embedding: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        # The Lua net runs its image trunk twice (one module in both pathways): same output.
        features = self.image(images)
        text = _tile(self.text(embedding), GRID)
        region = crop_box(self.region_in(torch.cat([features, text], 1)), box)
        region = F.leaky_relu(self.region_out(region).mean((2, 3)), 0.2)
        glob = torch.cat([self.global_image(features), self.global_text(crop_box(text, box))], 1)
        glob = self.global_joint(glob).flatten(1)
        return self.head(torch.cat([region, glob], 1)).view(-1)


# ----------------------------------------------------------------------------- keypoint model
class KeypointGenerator(nn.Module):
    def __init__(self, cfg: GawwnConfig):
        super().__init__()
        g, p = cfg.gf_dim, cfg.num_parts
        self.noise = nn.Linear(cfg.z_dim, g * 4)
        self.text = nn.Linear(cfg.text_dim, g * 4)
        self.region_fc = nn.Sequential(nn.Linear(g * 8, g * 4), nn.BatchNorm1d(g * 4), nn.ReLU(inplace=True))
        self.region_conv = nn.Sequential(_deconv(g * 4, g * 4, 3, 1, 1), *_bn_relu(g * 4))
        self.global_fc = nn.Sequential(nn.Linear(g * 8, g * 4), nn.BatchNorm1d(g * 4), nn.ReLU(inplace=True))
        self.global_parts = nn.Sequential(_conv(p, g, 4, 2, 1), *_bn_relu(g),
                                          _conv(g, g * 2, 4, 2, 1), *_bn_relu(g * 2),
                                          _conv(g * 2, g * 4, 4), *_bn_relu(g * 4))
        self.global_up = nn.Sequential(_deconv(g * 8, g * 4, 4, 1, 0), *_bn_relu(g * 4),
                                       _deconv(g * 4, g * 2), *_bn_relu(g * 2),
                                       _deconv(g * 2, g), *_bn_relu(g))
        self.joint = nn.Sequential(
            _deconv(g * 5 + p, g * 4, 3, 1, 1), *_bn_relu(g * 4),
            BottleneckResidual(nn.Sequential(_deconv(g * 4, g * 4, 3, 1, 1), nn.BatchNorm2d(g * 4)),
                               g, g * 4, leaky=False, bias=True),
            *_output_head(g * 4, g, cfg.image_size, keypoints=True))
        init_weights(self, linears=False, zero_conv_bias=True)

    def forward(self, embedding: torch.Tensor, noise: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
        maps = keypoint_maps(parts)
        noise_text = F.relu(torch.cat([self.noise(noise), self.text(embedding)], 1))
        gate = maps.sum(1, keepdim=True).clamp(0, 1)
        region = self.region_conv(_tile(self.region_fc(noise_text), GRID) * gate)
        glob = torch.cat([self.global_fc(noise_text), self.global_parts(maps).flatten(1)], 1)
        glob = self.global_up(glob[:, :, None, None])
        return self.joint(torch.cat([glob, region, maps], 1))


class KeypointDiscriminator(nn.Module):
    def __init__(self, cfg: GawwnConfig):
        super().__init__()
        d, nt, p = cfg.df_dim, cfg.t_dim, cfg.num_parts
        self.image = _image_trunk(cfg.image_size, d)
        self.text = nn.Sequential(nn.Linear(cfg.text_dim, nt), nn.LeakyReLU(0.2, inplace=True))
        self.region_in = nn.Sequential(_conv(d * 2 + nt, d * 2, 3, 1, 1), *_bn_lrelu(d * 2))
        self.region_out = nn.Sequential(_conv(d * 2 + p, d * 2, 1), *_bn_lrelu(d * 2), _conv(d * 2, d, 1))
        self.global_image = nn.Sequential(_conv(d * 2, d * 4, 4, 2, 1), *_bn_lrelu(d * 4),
                                          _conv(d * 4, d * 8, 4, 2, 1), *_bn_lrelu(d * 8))
        self.global_joint = nn.Sequential(_conv(d * 8 + nt, d * 4, 1), *_bn_lrelu(d * 4),
                                          _conv(d * 4, d, 4), *_bn_lrelu(d))
        self.head = _head(d, cfg.d_head_bn)
        init_weights(self, linears=False, zero_conv_bias=True)

    def forward(self, images: torch.Tensor, embedding: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
        maps = keypoint_maps(parts)
        features = self.image(images)
        t = self.text(embedding)
        gate = maps.sum(1, keepdim=True).clamp(0, 1)
        region = self.region_in(torch.cat([features, _tile(t, GRID)], 1)) * gate
        region = F.leaky_relu(self.region_out(torch.cat([region, maps], 1)).mean((2, 3)), 0.2)
        glob = self.global_joint(torch.cat([self.global_image(features), _tile(t, 4)], 1)).flatten(1)
        return self.head(torch.cat([region, glob], 1)).view(-1)


def build_generator(cfg: GawwnConfig) -> nn.Module:
    return BoxGenerator(cfg) if cfg.conditioning == "bbox" else KeypointGenerator(cfg)


def build_discriminator(cfg: GawwnConfig) -> nn.Module:
    return BoxDiscriminator(cfg) if cfg.conditioning == "bbox" else KeypointDiscriminator(cfg)


# ----------------------------------------------------------------------------- model
class GawwnModel(OneStageModel):
    def __init__(self, cfg: GawwnConfig, optim: OptimConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu", wrong_pairs: str = "shuffled_text",
                 autocast_bf16: bool = False, channels_last: bool = False):
        errors = cfg.validate()
        if wrong_pairs not in ("shuffled_text", "other_class"):
            errors.append(f"data.wrong_strategy {wrong_pairs!r}: GAWWN takes shuffled_text (the "
                          "Lua code) or other_class")
        if errors:
            raise ValueError("; ".join(errors))
        self.cfg, self.wrong_pairs = cfg, wrong_pairs
        self.condition = "box" if cfg.conditioning == "bbox" else "parts"
        self.conditions = (self.condition,)
        super().__init__(build_generator(cfg), build_discriminator(cfg), cfg.z_dim,
                         optim or OptimConfig(lr_decay_epochs=100), seed, device,
                         autocast_bf16=autocast_bf16, channels_last=channels_last)

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        size = self.cfg.image_size
        real = self._images(batch["images"][size])
        emb = batch["embedding"].to(self.device)
        where = batch[self.condition].to(self.device)
        torch.manual_seed(step_seed(self.seed, step, self.micro_offset))
        if self.wrong_pairs == "shuffled_text":  # the same image and location, another's text
            wrong_args = (real, emb[torch.randperm(emb.shape[0]).to(self.device)], where)
        else:  # a deviation kept as an option: an image of another class with its own location
            wrong_args = (self._images(batch["wrong_images"][size]), emb,
                          batch[f"wrong_{self.condition}"].to(self.device))
        with self._autocast():
            fake = self.netG(emb, torch.randn(emb.shape[0], self.cfg.z_dim, device=self.device), where)

        self.optD.zero_grad(set_to_none=True)
        self.optG.zero_grad(set_to_none=True)
        with self._autocast():
            real_logits = self.netD(real, emb, where).float()
            wrong_logits = self.netD(*wrong_args).float()
            fake_logits = self.netD(fake, emb, where).float()  # not detached: G's loss reuses it
        loss_d = discriminator_loss(real_logits, fake_logits, wrong_logits, self.cfg.cls_weight)
        loss_g = bce_real(fake_logits)
        # Both gradients come from this one forward pass, before either network steps. (The Lua
        # code runs G's backward after D's Adam step, through the new D weights with the old
        # activations; here both see the weights of the forward pass.)
        loss_d.backward(inputs=list(self.netD.parameters()), retain_graph=True)
        loss_g.backward(inputs=list(self.netG.parameters()))
        grad_d = self.apply_gradients(self.netD, self.optD)
        grad_g = self.apply_gradients(self.netG, self.optG)
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "kl": 0.0,
                "d_real": torch.sigmoid(real_logits).mean().item(),
                "d_fake": torch.sigmoid(fake_logits).mean().item(),
                "d_wrong": torch.sigmoid(wrong_logits).mean().item(),
                "grad_norm_d": grad_d, "grad_norm_g": grad_g, **self.learning_rates()}

    def default_condition(self, name: str) -> torch.Tensor:
        """The location for a caption that comes without one (free text)."""
        if name == "box":
            return torch.tensor(list(self.cfg.default_box), dtype=compute_dtype())
        from harness.errors import UserError

        raise UserError("the keypoint GAWWN draws where its 15 parts are: sample test captions "
                        "(--split test), which carry their image's parts, not free text")

    @torch.no_grad()
    def generate(self, embedding: torch.Tensor, noise: torch.Tensor, *unused,
                 box: torch.Tensor | None = None, parts: torch.Tensor | None = None
                 ) -> dict[str, torch.Tensor]:
        where = box if self.condition == "box" else parts
        if where is None:
            where = self.default_condition(self.condition).expand(embedding.shape[0], -1)
        return {"stage1": self.netG(embedding.to(self.device), noise.to(self.device),
                                    where.to(self.device))}


__all__ = ["GawwnConfig", "GawwnModel", "build_generator", "build_discriminator", "box_theta",
           "invert_box_theta", "crop_box", "paste_into_box", "keypoint_maps"]
