import numpy as np
import pytest
from PIL import Image

from harness.data.crop import bbox_crop_box


@pytest.mark.parametrize("bbox, size, expected", [
    # R = int(40 * .75) = 30 around (120, 110): entirely inside the image.
    ((100, 100, 40, 20), (500, 500), (90, 80, 150, 140)),
    # A CUB-sized box: R = int(325 * .75) = 243 around (222, 179); clipped on three sides.
    ((60, 27, 325, 304), (500, 375), (0, 0, 465, 375)),
    # Box at the right/bottom edge: R = int(50 * .75) = 37 around (475, 285); clipped right/bottom.
    ((450, 260, 50, 50), (500, 300), (438, 248, 500, 300)),
    # Fractional box: centre int((2*10.5 + 5.2) / 2) = 13, int((2*3.3 + 9.9) / 2) = 8; R = 7.
    ((10.5, 3.3, 5.2, 9.9), (64, 64), (6, 1, 20, 15)),
])
def test_crop_matches_hand_computation(bbox, size, expected):
    assert bbox_crop_box(bbox, *size) == expected


def test_clipped_crop_is_non_square_and_squashed_by_resize():
    left, top, right, bottom = bbox_crop_box((60, 27, 325, 304), 500, 375)
    img = Image.fromarray(np.zeros((375, 500, 3), np.uint8)).crop((left, top, right, bottom))
    assert img.size == (465, 375)
    assert img.resize((76, 76), Image.BICUBIC).size == (76, 76)
