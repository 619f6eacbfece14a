"""Evaluation protocols, by name: which test captions are sampled, and how many images each.

- ``all-captions``: each of the (10) captions of each test image, once (2,933 × 10 ≈ 30k images
  on CUB, the usual IS protocol).
- ``stackgan-tf``: the official TensorFlow evaluation (hanzhanggit/StackGAN stageII/trainer.py
  with demo/cfg/birds-eval.yml): the first caption of each test image, its single-caption
  embedding, NUM_COPY = 8 samples each.
Other numbers of captions per image and images per caption are a ``custom`` protocol, named by
its numbers in the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UserError


@dataclass(frozen=True)
class Protocol:
    name: str
    captions_per_image: int  # the first N captions of each test image
    per_caption: int  # images per caption

    def settings(self) -> dict:
        return {"protocol": self.name, "captions_per_image": self.captions_per_image,
                "per_caption": self.per_caption}


PROTOCOLS = {
    "all-captions": Protocol("all-captions", 10, 1),
    "stackgan-tf": Protocol("stackgan-tf", 1, 8),
}
DEFAULT = "all-captions"


def resolve(name: str | None = None, captions_per_image: int | None = None,
            per_caption: int | None = None) -> Protocol:
    """A named protocol, or the one the explicit numbers describe (``custom`` unless they are
    a named protocol's). Giving both a name and numbers is refused."""
    if name is not None:
        if name not in PROTOCOLS:
            raise UserError(f"--protocol {name!r}: choose one of {', '.join(PROTOCOLS)}")
        if captions_per_image is not None or per_caption is not None:
            raise UserError(f"--protocol {name} fixes captions per image and images per caption; "
                            "drop --captions-per-image / --per-caption")
        return PROTOCOLS[name]
    base = PROTOCOLS[DEFAULT]
    cpi = base.captions_per_image if captions_per_image is None else captions_per_image
    pc = base.per_caption if per_caption is None else per_caption
    if cpi < 1 or pc < 1:
        raise UserError("--captions-per-image and --per-caption must be at least 1")
    for protocol in PROTOCOLS.values():
        if (protocol.captions_per_image, protocol.per_caption) == (cpi, pc):
            return protocol
    return Protocol("custom", cpi, pc)
