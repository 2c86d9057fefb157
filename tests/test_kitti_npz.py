"""gt_depths.npz reading (kitti.gt_depth_maps): genuine exports load, crafted pickles are refused unrun."""
import io
import os
import zipfile

import numpy as np
import pytest

from kitti import gt_depth_maps
from utils import InputError


def export_like_monodepth2(path, maps):
    """As monodepth2's export_gt_depth.py writes it: np.savez_compressed(..., data=np.array(gt_depths))."""
    data = np.empty(len(maps), object)
    for i, depth in enumerate(maps):
        data[i] = depth
    np.savez_compressed(path, data=data)


def crafted_npz(path, payload):
    """An npz whose "data.npy" is an object-array header followed by a pickle of `payload`."""
    buffer = io.BytesIO()
    np.save(buffer, np.array([payload, None], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data.npy", buffer.getvalue())


class RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class RunsExec:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        import builtins
        return builtins.exec, (self.code,)


def test_genuine_export_reads_back_equal(tmp_path):
    rng = np.random.default_rng(0)
    maps = [rng.uniform(0, 80, shape).astype(np.float32) for shape in [(375, 1242), (370, 1224), (374, 1238)]]
    export_like_monodepth2(tmp_path / "gt_depths.npz", maps)
    loaded = gt_depth_maps(tmp_path / "gt_depths.npz", 3)
    assert len(loaded) == 3
    for got, want in zip(loaded, maps):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    with pytest.raises(InputError, match="3 depth maps for the 2 frames"):
        gt_depth_maps(tmp_path / "gt_depths.npz", 2)


def test_crafted_pickle_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    crafted_npz(tmp_path / "gt_depths.npz", RunsCommand(f"touch {marker}"))
    with pytest.raises(InputError, match=r"gt_depths\.npz: refuses to load: its pickle calls (posix|nt|os)\.system"):
        gt_depth_maps(tmp_path / "gt_depths.npz", 2)
    assert not marker.exists()

    crafted_npz(tmp_path / "exec.npz", RunsExec(f"open({str(marker)!r}, 'w').close()"))
    with pytest.raises(InputError, match=r"exec\.npz: refuses to load: its pickle calls builtins\.exec"):
        gt_depth_maps(tmp_path / "exec.npz", 2)
    assert not marker.exists()


def test_plain_float_array_still_works(tmp_path):
    maps = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    np.savez(tmp_path / "gt_depths.npz", data=maps)
    loaded = gt_depth_maps(tmp_path / "gt_depths.npz", 2)
    assert len(loaded) == 2
    np.testing.assert_array_equal(np.stack(loaded), maps)


def test_not_a_gt_depths_npz(tmp_path):
    np.savez(tmp_path / "other.npz", depth=np.zeros((2, 4, 6), np.float32))
    with pytest.raises(InputError, match="other.npz: not a gt_depths.npz with a 'data' array"):
        gt_depth_maps(tmp_path / "other.npz", 2)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(InputError, match="text.npz: not a gt_depths.npz with a 'data' array"):
        gt_depth_maps(tmp_path / "text.npz", 2)
    with pytest.raises(InputError, match="missing.npz: not a gt_depths.npz"):
        gt_depth_maps(tmp_path / "missing.npz", 2)
