"""The bounding-box crop of the official StackGAN code (hanzhanggit/StackGAN
misc/preprocess_birds.py), as plain arithmetic."""

from __future__ import annotations


def bbox_crop_box(bbox, width: int, height: int) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) crop for a CUB box ``(x, y, w, h)`` in a W×H image.

    R = int(max(w, h) * 0.75) around the box centre, clipped to the image; a clipped crop may be
    non-square (the resize that follows squashes it, as the official code does).
    """
    x, y, w, h = (float(v) for v in bbox)
    r = int(max(w, h) * 0.75)
    center_x = int((2 * x + w) / 2)
    center_y = int((2 * y + h) / 2)
    top = max(0, center_y - r)
    bottom = min(height, center_y + r)
    left = max(0, center_x - r)
    right = min(width, center_x + r)
    return left, top, right, bottom
