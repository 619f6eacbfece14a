"""Typed model configuration of StackGAN. Defaults are the birds sizes of both code bases."""

from __future__ import annotations

from dataclasses import dataclass

VARIANTS = ("paper", "pytorch")


@dataclass
class ModelConfig:
    # paper: the TensorFlow architecture behind the paper's CUB/Oxford numbers;
    # pytorch: the official StackGAN-Pytorch architecture.
    variant: str = "paper"
    stage: int = 1
    z_dim: int = 100
    text_dim: int = 1024
    ca_dim: int = 128
    gf_dim: int = 128
    df_dim: int = 64
    r_num: int = 4  # Stage-II residual blocks (TF: 4; PyTorch birds 4, COCO 2)
    stage1_size: int = 64  # Stage-I output (256 for the "256×256 Stage-I" ablation)
    stage2_size: int = 256  # Stage-II output (128 for the "128×128 StackGAN" ablation)
    use_ca: bool = True  # False: a deterministic FC instead of conditioning augmentation, no KL
    stage2_text: bool = True  # "text twice": Stage-II has its own text conditioning
    # Both code bases weight the KL term by 2.0; the paper's text says lambda = 1.
    kl_weight: float = 2.0
    # The frozen Stage-I inside Stage-II: both official code bases run its BatchNorm in train
    # mode (batch statistics, running statistics updated): TF builds it under phase=train,
    # StackGAN-Pytorch never calls eval() on it. "eval" (running statistics, unchanged) is a
    # deviation offered as an option (docs/fidelity.md).
    stage1_bn_mode: str = "train"
    # The G update's noise: "fresh" z and CA epsilon (TF: the G update is its own sess.run),
    # or "reuse" the D step's fake images (StackGAN-Pytorch); "auto" follows the variant.
    g_step_noise: str = "auto"

    def validate(self) -> list[str]:
        errors = []
        if self.variant not in VARIANTS:
            errors.append(f"model.variant: {self.variant!r} is not one of {VARIANTS}")
        if self.stage not in (1, 2):
            errors.append(f"model.stage: {self.stage} is not 1 or 2")
        for name in ("stage1_size", "stage2_size"):
            size = getattr(self, name)
            if size < 16 or size & (size - 1):
                errors.append(f"model.{name}: {size} is not a power of two >= 16")
        if self.stage == 2 and self.stage2_size <= self.stage1_size:
            errors.append("model.stage2_size must exceed model.stage1_size")
        if self.stage1_bn_mode not in ("eval", "train"):
            errors.append(f"model.stage1_bn_mode: {self.stage1_bn_mode!r} is not eval or train")
        if self.g_step_noise not in ("auto", "fresh", "reuse"):
            errors.append(f"model.g_step_noise: {self.g_step_noise!r} is not auto, fresh or reuse")
        for name in ("z_dim", "text_dim", "ca_dim", "gf_dim", "df_dim"):
            if getattr(self, name) < 1:
                errors.append(f"model.{name} must be positive")
        if self.gf_dim % 4 or self.gf_dim < 8:
            errors.append("model.gf_dim must be a multiple of 4 and >= 8")
        return errors

    @property
    def output_size(self) -> int:
        return self.stage1_size if self.stage == 1 else self.stage2_size

    @property
    def fresh_g_noise(self) -> bool:
        if self.g_step_noise == "auto":
            return self.variant == "paper"
        return self.g_step_noise == "fresh"
