"""Writes ``char-CNN-RNN-embeddings.pickle`` per split in the released format (N × C × 1024).

Self-trained and released embeddings are then read through one path. A sidecar
``<file>.meta.json`` records the dataset fingerprint and the encoder it came from; a file whose
sidecar matches is reused, and a file without one (e.g. the released embeddings) is never
overwritten unless forced.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tqdm import tqdm

from harness.atomic import write_text_atomic
from harness.core.compute_dtype import numpy_compute_dtype
from harness.data.fingerprint import sha256_file
from harness.data.safe_pickle import dump_pickle
from harness.data.sources import EMBEDDINGS_FILE, dataset_fingerprint, load_index
from harness.errors import UserError
from harness.text.train import encode_texts, load_text_encoder


def embed_dataset(data_root: str | os.PathLike, encoder_path: str | os.PathLike,
                  splits: tuple[str, ...] = ("train", "test"), name: str = EMBEDDINGS_FILE,
                  force: bool = False, progress: bool = True) -> dict[str, Path]:
    data_root, encoder_path = Path(data_root), Path(encoder_path)
    model, cfg, ckpt = load_text_encoder(encoder_path)
    fingerprint = dataset_fingerprint(data_root)
    key = hashlib.sha256(json.dumps({"data": fingerprint, "encoder": sha256_file(encoder_path),
                                     "name": name}, sort_keys=True).encode()).hexdigest()
    written = {}
    for split in splits:
        index = load_index(data_root, split)
        out = (index.split_dir or data_root / split) / name
        meta_path = out.with_name(out.name + ".meta.json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
        if out.exists() and meta is not None and meta.get("key") == key and not force:
            print(f"{out}: up to date; reusing it")
            written[split] = out
            continue
        if out.exists() and meta is None and not force:
            raise UserError(f"{out}: exists and was not written by `text embed` (released "
                            "embeddings?); pass --force to replace it or --name to write another file")
        per_image = index.captions_per_image
        texts = []
        for i in tqdm(range(len(index)), desc=f"reading {split} captions", disable=not progress,
                      leave=False):
            caps = index.captions(i)
            if len(caps) < per_image:
                raise UserError(f"{index.caption_paths[i] if index.caption_paths else index.keys[i]}: "
                                f"{len(caps)} captions, expected {per_image}")
            texts += caps[:per_image]
        emb = encode_texts(model, texts, cfg.max_length).numpy().astype(numpy_compute_dtype())
        emb = emb.reshape(len(index), per_image, -1)
        dump_pickle(emb, out)
        write_text_atomic(meta_path, json.dumps({
            "key": key, "data_fingerprint": fingerprint, "encoder": str(encoder_path),
            "encoder_sha256": sha256_file(encoder_path), "shape": list(emb.shape)}, indent=2))
        print(f"{out}: wrote embeddings of shape {emb.shape}")
        written[split] = out
    return written
