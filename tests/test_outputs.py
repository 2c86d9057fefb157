"""outputs.py: depth as pictures."""
import numpy as np

from outputs import colorize


def test_colorize_uses_the_colormap_and_blacks_out_holes():
    import matplotlib

    depth = np.array([[1.0, 2.0], [3.0, np.nan]])
    rgb = colorize(depth, cmap="viridis")
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    lut = matplotlib.colormaps["viridis"]
    np.testing.assert_array_equal(rgb[0, 0], np.round(np.array(lut(0.0)[:3]) * 255).astype(np.uint8))
    np.testing.assert_array_equal(rgb[1, 0], np.round(np.array(lut(1.0)[:3]) * 255).astype(np.uint8))
    np.testing.assert_array_equal(rgb[1, 1], [0, 0, 0])
