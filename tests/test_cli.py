import subprocess
import sys

import numpy as np
import tifffile

from napari_spines.cli import main


def test_info_prints_voxel_size_and_laziness(tmp_path, capsys, stack):
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, stack, imagej=True, resolution=(1 / 0.12, 1 / 0.12),
                     metadata={"axes": "ZYX", "spacing": 1.0, "unit": "micron"})
    assert main(["info", str(path), "--lazy"]) == 0
    out = capsys.readouterr().out
    assert "voxel size: 1 × 0.12 × 0.12 µm" in out
    assert "lazy:       yes" in out and "axes:       ZYX" in out


def test_info_on_bad_file_is_one_line_and_exit_code_2(tmp_path):
    path = tmp_path / "bad.tif"
    path.write_bytes(b"\x00" * 10)
    result = subprocess.run([sys.executable, "-m", "napari_spines.cli", "info", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "bad.tif" in result.stderr
    assert "Traceback" not in result.stderr


def test_info_on_points_csv(tmp_path, capsys):
    from napari_spines.io import write_points_csv

    path = write_points_csv(tmp_path / "p.csv", np.ones((3, 3)), (1.0, 0.2, 0.2),
                            {"score": [1, 2, 3]})
    assert main(["info", str(path)]) == 0
    assert "3 points" in capsys.readouterr().out


def test_view_with_bad_file_exits_2_before_opening_a_window(tmp_path, capsys):
    path = tmp_path / "nothing.h5"
    path.write_bytes(b"junk")
    assert main(["view", str(path)]) == 2
    assert "nothing.h5" in capsys.readouterr().err


def test_real_stack_info(real_data, capsys):
    assert main(["info", str(real_data / "two_photon/rr30a/rr30a_tp0.tif")]) == 0
    assert "voxel size: 1 × 0.12 × 0.12 µm (z, y, x)" in capsys.readouterr().out
