"""Torch files written atomically and read back safely, with errors that name the file."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from harness.atomic import write_bytes_atomic
from harness.errors import UserError


def save_torch_atomic(obj: dict, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes_atomic(path, buf.getvalue())


def load_torch_checked(path: str | os.PathLike, expected_format: str, what: str) -> dict:
    """Load with ``weights_only`` (tensors and plain data only: never run pickled code) and check
    the file's ``format`` field; ``what`` names the kind of file in errors."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise UserError(f"{path}: {what} not found") from exc
    except Exception as exc:  # a damaged file raises many kinds of errors inside torch
        raise UserError(f"{path}: not a readable {what} ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != expected_format:
        raise UserError(f"{path}: not a stackgan-bench {what}")
    return state
