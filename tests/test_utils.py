"""utils.py: reading pictures of every mode, and naming the files it cannot read."""
import numpy as np
import pytest
from PIL import Image

from utils import load_image


@pytest.mark.parametrize("mode, array", [
    ("RGB", np.full((5, 6, 3), (255, 0, 51), np.uint8)),
    ("RGBA", np.full((5, 6, 4), (255, 0, 51, 7), np.uint8)),
    ("L", np.full((5, 6), 51, np.uint8)),
    ("I;16", np.full((5, 6), 13107, np.uint16)),
])
def test_load_image_modes(tmp_path, mode, array):
    path = tmp_path / f"img_{mode.replace(';', '')}.png"
    Image.fromarray(array).save(path)
    img = load_image(path)
    assert img.shape == (5, 6, 3) and img.dtype == np.float32
    expected = {"RGB": (1.0, 0.0, 0.2), "RGBA": (1.0, 0.0, 0.2), "L": (0.2,) * 3, "I;16": (0.2,) * 3}[mode]
    np.testing.assert_allclose(img[2, 3], expected, atol=1e-6)
