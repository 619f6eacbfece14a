"""The served form's images: content-addressed URLs for exactly the images a study shows.

An image is served at ``/img/<digest>.png``, the digest being the first 128 bits of the SHA-256
of its bytes. The URL never changes its content, so browsers may keep it for a year
(``immutable``) and a rater's browser fetches each image once, however often it appears (a
repeated attention-check item shows the same images again). Only images named in study.json's
items are indexed: nothing else in the study folder (key.json, the forms) has a URL.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.errors import UserError

URL_PREFIX = "/img/"
CACHE_CONTROL = b"public, max-age=31536000, immutable"


class ImageIndex:
    def __init__(self, study: dict, images_dir: Path):
        self.images_dir = Path(images_dir)
        self.digest_of: dict[str, str] = {}  # image id -> digest
        self.path_of: dict[str, Path] = {}  # digest -> file
        for item in study["items"]:
            for group in item["groups"]:
                for image_id in group["images"]:
                    if image_id not in self.digest_of:
                        self._add(image_id)

    def _add(self, image_id: str) -> None:
        path = self.images_dir / f"{image_id}.png"
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:32]
        except FileNotFoundError:
            raise UserError(f"{path}: missing; the study names image {image_id} but its "
                            "share/images folder lacks it") from None
        self.digest_of[image_id] = digest
        self.path_of[digest] = path

    def url(self, image_id: str) -> str:
        return f"{URL_PREFIX}{self.digest_of[image_id]}.png"

    def file(self, name: str) -> Path | None:
        """The file behind ``<digest>.png``, or None for any other name."""
        digest, dot, ext = name.partition(".")
        if not dot or ext != "png":
            return None
        return self.path_of.get(digest)
