import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_spines.cli import main


def test_info_prints_voxel_size_and_laziness(tmp_path, capsys, stack):
    path = tmp_path / "s.tif"
    tifffile.imwrite(
        path,
        stack,
        imagej=True,
        resolution=(1 / 0.12, 1 / 0.12),
        metadata={"axes": "ZYX", "spacing": 1.0, "unit": "micron"},
    )
    assert main(["info", str(path), "--lazy"]) == 0
    out = capsys.readouterr().out
    assert "voxel size: 1 × 0.12 × 0.12 µm" in out
    assert "lazy:       yes" in out and "axes:       ZYX" in out


def test_info_on_bad_file_is_one_line_and_exit_code_2(tmp_path):
    path = tmp_path / "bad.tif"
    path.write_bytes(b"\x00" * 10)
    result = subprocess.run(
        [sys.executable, "-m", "napari_spines.cli", "info", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "bad.tif" in result.stderr
    assert "Traceback" not in result.stderr


def test_info_on_points_csv(tmp_path, capsys):
    from napari_spines.io import write_points_csv

    path = write_points_csv(
        tmp_path / "p.csv", np.ones((3, 3)), (1.0, 0.2, 0.2), {"score": [1, 2, 3]}
    )
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


def test_synthetic_command_writes_stack_and_ground_truth(tmp_path):
    from napari_spines.io import read_points_csv, read_volumes

    out = tmp_path / "s.tif"
    assert main(["synthetic", "two-photon", "-o", str(out), "--shape", "8", "64", "64"]) == 0
    (volume,) = read_volumes(out)
    assert volume.shape == (8, 64, 64) and volume.dtype == np.uint16
    assert volume.voxel_size_um == pytest.approx((1.0, 0.12, 0.12))
    coords, voxel, props = read_points_csv(tmp_path / "s_spines.csv")
    assert voxel == pytest.approx((1.0, 0.12, 0.12)) and len(coords) == len(props["id"])
    em = tmp_path / "em.tif"
    assert main(["synthetic", "em", "-o", str(em), "--shape", "4", "32", "32"]) == 0
    (labels,) = read_volumes(tmp_path / "em_labels.tif")
    assert labels.shape == (4, 32, 32) and int(labels.data.max()) > 1
    assert main(["synthetic", "em", "-o", str(tmp_path / "x.png")]) == 2


def test_progress_is_a_bar_on_a_terminal_and_short_lines_in_a_log():
    import io

    from napari_spines.cli._common import TextProgress

    log = io.StringIO()
    progress = TextProgress("segment", unit="%", stream=log)
    for done in range(101):
        progress(done, 100)
    lines = log.getvalue().splitlines()
    assert len(lines) == 11  # each tenth and the end, not 101 lines
    assert lines[3].startswith("segment: 30%") and lines[-1] == "segment: 100%"
    assert "/100" not in log.getvalue()

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    TextProgress("detect", stream=screen)(16, 16)
    assert screen.getvalue() == "\rdetect [########################] 16/16 tiles, 100%\x1b[K\n"
