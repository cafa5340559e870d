"""``napari-spines segment``: labels of the input's shape, affinities, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_spines.cli import main
from napari_spines.segmentation.metrics import score_segmentation
from tests.models.tiny import cells_stack


@pytest.fixture
def em_stack(tmp_path: Path) -> tuple[Path, np.ndarray]:
    image, truth = cells_stack((6, 48, 64), n_cells=10, seed=1)
    path = tmp_path / "em.tif"
    tifffile.imwrite(path, image)
    return path, truth


def test_segment_writes_labels_of_the_input_shape(
    em_stack, edge_affinity_package, tmp_path, capsys
) -> None:
    image, truth = em_stack
    out, aff = tmp_path / "labels.tif", tmp_path / "aff.tif"
    code = main(
        [
            "segment",
            str(image),
            "-o",
            str(out),
            "--model",
            str(edge_affinity_package),
            "--threshold",
            "0.5",
            "--affinities-out",
            str(aff),
            "--mode",
            "3d",
        ]
    )
    assert code == 0, capsys.readouterr().err
    labels = tifffile.imread(out)
    assert labels.shape == truth.shape and labels.dtype.kind == "u"
    assert score_segmentation(truth, labels).adapted_rand_error < 0.01
    affinities = tifffile.imread(aff)
    assert affinities.shape == (3, *truth.shape) and affinities.dtype == np.float32
    err = capsys.readouterr().err
    assert "segments at threshold 0.5" in err
    # the file has no voxel size: the user is told what was assumed, and how to change it
    assert "em.tif: no voxel size: the stack's own grid, mode 3d as asked" in err
    assert "set --voxel-size Z Y X" in err


def test_a_stack_without_voxel_size_is_not_cut_at_every_section(
    edge_affinity_package, tmp_path, capsys
) -> None:
    """An isotropic stack whose file gives no voxel size is segmented in 3D, and says so."""
    from napari_spines.synthetic import synthetic_em

    sample = synthetic_em(shape=(12, 96, 96), n_cells=12, seed=0, voxel_size_um=(0.008,) * 3)
    image, out = tmp_path / "fibsem.tif", tmp_path / "labels.tif"
    tifffile.imwrite(image, sample.image.astype(np.float32))  # no voxel size in the file
    assert main(["segment", str(image), "-o", str(out), "-m", str(edge_affinity_package)]) == 0
    err = capsys.readouterr().err
    assert "fibsem.tif: no voxel size" in err and "isotropic (FIB-SEM) stack (mode 3d)" in err
    labels = tifffile.imread(out)
    across = (labels[1:] == labels[:-1]) & (labels[1:] > 0)
    assert across.mean() > 0.5  # segments go on into the next section


def test_threshold_changes_the_segmentation(em_stack, edge_affinity_package, tmp_path) -> None:
    image, _ = em_stack
    counts = []
    for threshold in ("0.05", "0.99"):
        out = tmp_path / f"labels_{threshold}.tif"
        assert (
            main(
                [
                    "segment",
                    str(image),
                    "-o",
                    str(out),
                    "-m",
                    str(edge_affinity_package),
                    "--threshold",
                    threshold,
                ]
            )
            == 0
        )
        counts.append(len(np.unique(tifffile.imread(out))))
    assert counts[0] > counts[1]


def test_segment_refuses_a_2d_image(tmp_path, edge_affinity_package, capsys) -> None:
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, np.zeros((32, 32), np.uint8))
    code = main(
        ["segment", str(path), "-o", str(tmp_path / "l.tif"), "-m", str(edge_affinity_package)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "3D stack" in err and "Traceback" not in err
    assert not (tmp_path / "l.tif").exists()


def test_segment_refuses_a_stack_of_channels_in_one_line(tmp_path, capsys) -> None:
    """An ImageJ file whose planes are channels: refused before its voxel size is used."""
    path = tmp_path / "channels.tif"
    image = np.zeros((4, 32, 32), np.uint8)
    tifffile.imwrite(path, image, imagej=True, resolution=(100, 100), metadata={"axes": "CYX"})
    code = main(["segment", str(path), "-o", str(tmp_path / "l.tif")])
    err = capsys.readouterr().err
    assert code == 2 and "this is CYX" in err and "Traceback" not in err


def test_segment_refuses_a_model_that_is_not_an_affinity_model(
    em_stack, tiny_package, tmp_path, capsys
) -> None:
    code = main(
        ["segment", str(em_stack[0]), "-o", str(tmp_path / "l.tif"), "-m", str(tiny_package)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "affinit" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "labels.png"], "must end in .tif"),
        (["-o", "labels.tif", "--threshold", "1.5"], "must be between 0 and 1"),
        (["-o", "labels.tif", "--affinities-out", "aff.zarr"], "must end in .tif"),
    ],
)
def test_segment_bad_arguments_are_one_line(em_stack, tmp_path, capsys, args, message) -> None:
    args = [str(tmp_path / a) if a.endswith((".png", ".tif", ".zarr")) else a for a in args]
    try:
        code = main(["segment", str(em_stack[0]), *args])
    except SystemExit as exc:  # values argparse refuses
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_segment_on_a_missing_file(tmp_path, capsys) -> None:
    assert main(["segment", str(tmp_path / "nope.tif"), "-o", str(tmp_path / "l.tif")]) == 2
    assert "nope.tif" in capsys.readouterr().err


def test_affinities_command_writes_the_affinities_of_labels(em_stack, tmp_path) -> None:
    from napari_spines.segmentation.affinities import labels_to_affinities

    truth = em_stack[1]
    labels, out = tmp_path / "truth.tif", tmp_path / "aff.tif"
    tifffile.imwrite(labels, truth)
    assert main(["affinities", str(labels), "-o", str(out)]) == 0
    np.testing.assert_array_equal(tifffile.imread(out), labels_to_affinities(truth))


def test_affinities_command_refuses_float_images(tmp_path, capsys) -> None:
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, np.zeros((3, 8, 8), np.float32))
    assert main(["affinities", str(path), "-o", str(tmp_path / "a.tif")]) == 2
    assert "integer ZYX label volume" in capsys.readouterr().err
