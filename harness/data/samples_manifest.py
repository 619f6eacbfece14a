"""Reading a samples folder's ``manifest.jsonl`` (the format `sample` writes, and what samples
from other code bases must provide): one JSON object per line, ``file`` relative to the folder.

Every reader goes through here so that a manifest from elsewhere is checked once, by the same
rules: UTF-8 text, one JSON object per line, ``file`` a non-empty string that stays inside the
folder once resolved (no absolute paths, no ``..``, no symbolic link out of it) — a manifest must
not make `eval` read, or `human make` hand to raters, a file outside its folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import UserError

MANIFEST = "manifest.jsonl"


def read_manifest(folder: str | Path, required: tuple[str, ...] = ()) -> list[dict]:
    """The manifest's rows; ``required``: keys (besides ``file``) every row must carry, as
    strings. A user error names the file, the line and the problem."""
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise UserError(f"{path}: no manifest in the samples folder") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    root = folder.resolve()
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise UserError(f"{path}: line {n} is not valid JSON") from exc
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {n}: expected a JSON object, got {type(row).__name__}")
        file = row.get("file")
        if not isinstance(file, str) or not file:
            raise UserError(f"{path}: line {n}: `file` must be the image's path relative to the folder "
                            f"(a non-empty string), got {file!r}")
        if not (folder / file).resolve().is_relative_to(root):
            raise UserError(f"{path}: line {n}: file {file!r} lies outside {folder} (absolute paths, "
                            "'..' and links out of the folder are refused)")
        for key in required:
            if not isinstance(row.get(key), str):
                raise UserError(f"{path}: line {n}: `{key}` must be a string, got {row.get(key)!r}")
        rows.append(row)
    return rows
