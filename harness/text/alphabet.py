"""Character encoding of captions as in Reed et al.'s char-CNN-RNN (CVPR 2016;
reedscot/cvpr2016).

The alphabet string has 70 slots; '-' occurs twice in it and, as in the original Lua code that
filled a lookup table in order, maps to its later slot. Characters outside the alphabet are
dropped after lower-casing; captions are cut or zero-padded to 201 characters.
"""

from __future__ import annotations

import torch

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+-=<>()[]{} "
ALPHABET_SIZE = len(ALPHABET)  # 70
MAX_LENGTH = 201
PAD = ALPHABET_SIZE  # index of the all-zero padding column
_INDEX = {ch: i for i, ch in enumerate(ALPHABET)}  # later duplicates win, as in the original


def encode(text: str, length: int = MAX_LENGTH) -> list[int]:
    ids = [_INDEX[ch] for ch in text.lower() if ch in _INDEX][:length]
    return ids + [PAD] * (length - len(ids))


def encode_batch(texts: list[str], length: int = MAX_LENGTH) -> torch.Tensor:
    """(B, length) int64 character indices; PAD marks padding."""
    return torch.tensor([encode(t, length) for t in texts], dtype=torch.long)
