"""The char-CNN-RNN text encoder and the image encoder it is trained with (Reed et al., CVPR
2016; reedscot/cvpr2016)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.core.compute_dtype import compute_dtype
from harness.text.alphabet import ALPHABET_SIZE, MAX_LENGTH


@dataclass(frozen=True)
class EncoderConfig:
    """Sizes of the text and image encoders. ``PRESETS`` holds the named ones."""

    conv_channels: tuple[int, int] = (384, 512)
    cnn_dim: int = 256
    rnn_type: str = "gru"  # gru | relu (vanilla ReLU RNN)
    rnn_dim: int = 256
    embedding_dim: int = 1024
    max_length: int = MAX_LENGTH
    image_encoder: str = "googlenet"  # googlenet (from scratch) | small_cnn
    image_size: int = 224
    small_cnn_width: int = 32

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EncoderConfig:
        d = dict(d)
        d["conv_channels"] = tuple(d["conv_channels"])
        return cls(**d)


PRESETS: dict[str, EncoderConfig] = {
    # The paper's text side; GoogLeNet trained from scratch stands in for the pretrained one,
    # which cannot be downloaded here.
    "paper": EncoderConfig(),
    # Minutes on a 2-core CPU.
    "small": EncoderConfig(conv_channels=(128, 128), cnn_dim=128, rnn_dim=128,
                           image_encoder="small_cnn", image_size=64, small_cnn_width=32),
}


class CharCNNRNN(nn.Module):
    """One-hot characters -> 3 temporal convolutions -> RNN, hidden states averaged -> linear."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        c1, c2 = cfg.conv_channels
        self.conv = nn.Sequential(
            nn.Conv1d(ALPHABET_SIZE, c1, 4), nn.ReLU(inplace=True), nn.MaxPool1d(3, 3),
            nn.Conv1d(c1, c2, 4), nn.ReLU(inplace=True), nn.MaxPool1d(3, 3),
            nn.Conv1d(c2, cfg.cnn_dim, 4), nn.ReLU(inplace=True), nn.MaxPool1d(3, 2),
        )
        if cfg.rnn_type == "gru":
            self.rnn = nn.GRU(cfg.cnn_dim, cfg.rnn_dim, batch_first=True)
        elif cfg.rnn_type == "relu":
            self.rnn = nn.RNN(cfg.cnn_dim, cfg.rnn_dim, nonlinearity="relu", batch_first=True)
        else:
            raise ValueError(f"rnn_type {cfg.rnn_type!r}: choose gru or relu")
        self.proj = nn.Linear(cfg.rnn_dim, cfg.embedding_dim)
        # Set after training (harness.text.train.output_scale_for): 1 while training.
        self.register_buffer("output_scale", torch.ones(()))

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        # Padding maps to an all-zero column: one_hot over ALPHABET_SIZE + 1, last class dropped.
        x = F.one_hot(chars, ALPHABET_SIZE + 1)[..., :ALPHABET_SIZE].to(compute_dtype()).transpose(1, 2)
        h = self.conv(x).transpose(1, 2)  # (B, T, cnn_dim)
        out, _ = self.rnn(h)
        return self.proj(out.mean(dim=1)) * self.output_scale


class SmallImageEncoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        w = cfg.small_cnn_width
        layers, cin = [], 3
        for cout in (w, 2 * w, 4 * w, 8 * w):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(cin, cfg.embedding_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(images).mean(dim=(2, 3)))


def build_image_encoder(cfg: EncoderConfig) -> nn.Module:
    if cfg.image_encoder == "small_cnn":
        return SmallImageEncoder(cfg)
    if cfg.image_encoder == "googlenet":
        from torchvision.models import googlenet

        net = googlenet(weights=None, aux_logits=False, init_weights=True,
                        num_classes=cfg.embedding_dim)
        return net
    raise ValueError(f"image_encoder {cfg.image_encoder!r}: choose googlenet or small_cnn")


def sje_loss(image_emb: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
    """Symmetric structured joint embedding loss for a batch of B distinct classes.

    Row i of each input belongs to class i. With scores s_ij = <image_i, text_j>, the image side
    is mean_i sum_{j != i} max(0, 1 + s_ij - s_ii), and the text side the same on the transpose.
    """
    scores = image_emb @ text_emb.t()
    diag = scores.diagonal()
    off = ~torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    img_side = (1 + scores - diag[:, None]).clamp(min=0)[off].view(scores.shape[0], -1).sum(1)
    txt_side = (1 + scores.t() - diag[:, None]).clamp(min=0)[off].view(scores.shape[0], -1).sum(1)
    return img_side.mean() + txt_side.mean()
