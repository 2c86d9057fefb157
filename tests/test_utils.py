"""utils.py: reading pictures of every mode, and naming the files it cannot read."""
import numpy as np
import pytest
from PIL import Image

from helpers import load_images
from utils import InputError, load_image


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


def test_load_images_reports_unreadable_files_by_name(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(good)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError, match=r"broken\.png: cannot read image"):
        load_images([good, bad])
    with pytest.raises(InputError, match=r"absent\.jpg: no such file"):
        load_image(tmp_path / "absent.jpg")
    assert len(load_images([good, good])) == 2
