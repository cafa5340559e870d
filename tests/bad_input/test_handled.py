"""Odd input that napari-spines can work with: it does, and says what it assumed or replaced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_spines.io import read_volumes
from napari_spines.io.points_csv import read_points_csv
from tests.bad_input.files import write_bad_files
from tests.bad_input.test_cli import run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every bad file, made once for the module."""
    return write_bad_files(tmp_path_factory.mktemp("odd input"))


@pytest.mark.parametrize("name", ["blank", "blank_unicode"])
def test_a_stack_without_spines_writes_an_empty_table(
    name: str, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """No detections is a result, not an error: exit 0 and a CSV with its header only."""
    out = tmp_path / "spines.csv"
    code, err = run_cli(["detect", str(files[name]), "-o", str(out), "-m", "spine-dog"], capsys)
    assert code == 0, err
    coords, _, _ = read_points_csv(out)
    assert coords.shape == (0, 3)


def test_a_high_threshold_finds_nothing_and_says_so(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A threshold above every score: an empty table, exit 0."""
    out = tmp_path / "spines.csv"
    argv = ["detect", str(files["good"]), "-o", str(out), "-m", "spine-dog", "--threshold", "1e9"]
    code, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "0 spines" in err
    assert read_points_csv(out)[0].shape == (0, 3)


def test_non_finite_voxels_are_replaced_and_reported(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """NaN and ±inf voxels: one warning, a finite output, the same spines as without them."""
    import tifffile

    found = {}
    for name in ("good", "with_inf"):
        out = tmp_path / f"{name}.csv"
        argv = ["detect", str(files[name]), "-o", str(out), "-m", "spine-dog"]
        argv += ["--voxel-size", "1", "0.12", "0.12"]
        code, err = run_cli(argv, capsys)
        assert code == 0, err
        assert ("NaN or infinite" in err) == (name == "with_inf"), err
        found[name] = read_points_csv(out)[0]
    # the damaged voxels sit in three small patches: detections elsewhere are unchanged
    far = [c for c in found["good"] if not (3 <= c[0] <= 7 and c[1] < 40 and c[2] < 40)]
    kept = [any(np.abs(c - d).max() < 1 for d in found["with_inf"]) for c in far]
    assert far and np.mean(kept) >= 0.9

    heat = tmp_path / "heat.tif"
    argv = ["predict", str(files["with_inf"]), "-m", "spine-dog", "-o", str(heat)]
    code, err = run_cli(argv, capsys)
    assert code == 0, err
    assert np.isfinite(tifffile.imread(heat)).all()


@pytest.mark.parametrize(
    "name", ["ome_voxel_zero", "ome_voxel_negative", "ome_voxel_nan", "imagej_nan_spacing"]
)
def test_an_unusable_voxel_size_in_a_file_is_unknown(name: str, files: dict[str, Path]) -> None:
    """0, negative or NaN sizes in the metadata are not taken as known (nor NaN as 1 µm)."""
    volume = read_volumes(files[name])[0]
    assert not volume.voxel_size_known
    assert all(np.isfinite(volume.voxel_size_um)) and min(volume.voxel_size_um) > 0


def test_an_unusable_voxel_size_is_named_in_a_warning(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The command says it assumed the model's voxel size, and how to set it."""
    out = tmp_path / "spines.csv"
    argv = ["detect", str(files["ome_voxel_zero"]), "-o", str(out), "-m", "spine-dog"]
    code, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "no voxel size" in err and "--voxel-size" in err


def test_lazy_or_eager_is_decided_by_the_decompressed_size(files: dict[str, Path]) -> None:
    """A Zarr store of a few KB that holds 1.9 GiB opens lazily; a huge one opens at all."""
    from napari_spines.io.lazy import path_size_bytes_on_disk

    assert path_size_bytes_on_disk(files["zarr_sparse"]) < 2**20
    assert read_volumes(files["zarr_sparse"])[0].lazy
    huge = read_volumes(files["zarr_huge"])[0]
    assert huge.lazy and huge.shape == (100000,) * 3


def test_eager_reading_of_data_larger_than_memory_is_refused(
    files: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    """``info --no-lazy`` on 909 TiB: one line, not an allocation."""
    code, err = run_cli(["info", "--no-lazy", str(files["zarr_huge"])], capsys)
    assert code == 2
    assert "does not fit in memory" in err


def test_a_model_on_a_huge_lazy_stack_is_refused_before_it_starts(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A run whose output cannot fit in memory says so instead of allocating it."""
    argv = ["predict", str(files["zarr_huge"]), "-m", "spine-dog", "-o", str(tmp_path / "o.tif")]
    argv += ["--voxel-size", "1", "0.24", "0.24"]
    code, err = run_cli(argv, capsys)
    assert code == 2, err
    assert "of memory" in err


def test_an_imagej_hyperstack_is_read_channels_before_space(files: dict[str, Path]) -> None:
    """TZCYX on disk becomes TCZYX, the order every consumer expects, with the same data."""
    import tifffile

    volume = read_volumes(files["hyperstack_tzcyx"])[0]
    assert volume.axes == "TCZYX"
    on_disk = tifffile.imread(files["hyperstack_tzcyx"])
    np.testing.assert_array_equal(volume.data, on_disk.transpose(0, 2, 1, 3, 4))
