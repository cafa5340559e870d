"""Detection end to end: model → peaks → table, CLI, bad input."""

import csv

import numpy as np
import pytest
import tifffile

from napari_spines.cli import main
from napari_spines.models import ModelError, find_model
from napari_spines.spines.detection import detect_spines
from napari_spines.spines.evaluate import load_session, score_on_session
from napari_spines.spines.metrics import score_detections
from napari_spines.synthetic import synthetic_two_photon


@pytest.mark.parametrize("name", ["spine-2p", "spine-dog", "em-affinity"])
def test_every_builtin_model_ships_with_the_package(name):
    """A packaging loss (weights left out of the wheel, a broken model.yaml) fails here."""
    package = find_model(name)
    assert package.source == "built-in"
    assert all((package.root / w.file).is_file() for w in package.spec.weights.values())


@pytest.mark.parametrize("seed", [11, 12])
def test_builtin_model_finds_planted_spines(seed):
    sample = synthetic_two_photon(shape=(32, 256, 256), seed=seed)
    found = detect_spines(sample.image, "ZYX", "spine-2p", sample.voxel_size_um)
    score = score_detections(found.coords, sample.spines, sample.voxel_size_um, 1.0)
    assert score.f1 >= 0.9, str(score)


def test_classical_baseline_finds_isolated_blobs():
    """spine-dog through the whole pipeline on bright isolated heads at known places."""
    voxel = (1.0, 0.12, 0.12)
    truth = np.array([[8.0, 60.0, 60.0], [12.0, 150.0, 90.0], [6.0, 100.0, 200.0]])
    grid = np.indices((20, 256, 256)).astype(np.float32)
    image = np.full((20, 256, 256), 50.0, np.float32)
    for p in truth:
        d2 = sum(
            ((g - c) * v / s) ** 2
            for g, c, v, s in zip(grid, p, voxel, (0.8, 0.35, 0.35), strict=True)
        )
        image += 1000 * np.exp(-0.5 * d2)
    found = detect_spines(image, "ZYX", "spine-dog", voxel)
    score = score_detections(found.coords, truth, voxel, 1.0)
    assert score.f1 == 1.0, str(score)
    # peaks found on the model's 0.24 µm grid land on the heads in the stack's 0.12 µm voxels
    offsets = (found.coords[:, None] - truth[None]) * voxel
    assert np.linalg.norm(offsets, axis=-1).min(axis=0).max() < 0.1


def test_time_series_gives_a_t_column():
    sample = synthetic_two_photon(shape=(16, 96, 96), n_timepoints=2, seed=3)
    found = detect_spines(sample.image, "TZYX", "spine-dog", sample.voxel_size_um)
    assert found.coords.shape[1] == 4
    for t in (0, 1):  # each time point's spines are those of its own stack, at their time
        alone = detect_spines(sample.image[t], "ZYX", "spine-dog", sample.voxel_size_um)
        at_t = found.coords[found.coords[:, 0] == t]
        assert len(alone) > 0
        np.testing.assert_allclose(at_t[:, 1:], alone.coords)


@pytest.mark.parametrize(
    ("shape", "axes", "voxel", "message"),
    [
        ((64, 64), "YX", (0.12, 0.12), "3D stack"),
        ((2, 8, 64, 64), "CZYX", (1, 0.1, 0.1), "one channel"),
        ((8, 64, 64), "ZYX", (1000.0, 120.0, 120.0), "implausible"),
        ((8, 64, 64), "ZYX", (0.0, 0.12, 0.12), "implausible"),
    ],
)
def test_bad_input_is_a_clear_error(shape, axes, voxel, message):
    with pytest.raises(ValueError, match=message):
        detect_spines(np.zeros(shape, np.float32), axes, "spine-dog", voxel)


def test_empty_stack_gives_no_spines_and_no_crash():
    found = detect_spines(np.zeros((8, 64, 64), np.uint8), "ZYX", "spine-dog", (1, 0.12, 0.12))
    assert len(found) == 0


def test_unknown_or_wrong_task_model_is_refused(tmp_path):
    from tests.models.tiny import make_tiny_package

    with pytest.raises(ModelError, match="no-such-model"):
        detect_spines(np.zeros((8, 64, 64)), "ZYX", "no-such-model", (1, 0.12, 0.12))
    affinities = make_tiny_package(
        tmp_path / "aff", task="affinities", channels_out=3, runtimes=("onnx",)
    )
    with pytest.raises(ModelError, match="affinities"):
        detect_spines(np.zeros((8, 64, 64)), "ZYX", str(affinities), (1, 0.12, 0.12))


def test_detect_cli_writes_the_documented_columns(tmp_path):
    sample = synthetic_two_photon(shape=(16, 128, 128), seed=2)
    path = tmp_path / "s.tif"
    tifffile.imwrite(
        path,
        sample.image,
        imagej=True,
        resolution=(1 / 0.12, 1 / 0.12),
        metadata={"axes": "ZYX", "spacing": 1.0, "unit": "um"},
    )
    out = tmp_path / "spines.csv"
    assert main(["detect", str(path), "-m", "spine-dog", "-o", str(out)]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["id", "z", "y", "x", "z_um", "y_um", "x_um", "score"]
    assert len(rows) > 2
    first = [float(v) for v in rows[1]]
    assert first[5] == pytest.approx(first[2] * 0.12, rel=1e-4)  # µm from voxels


def test_detect_cli_tile_changes_the_tiling_not_the_spines(tmp_path, monkeypatch):
    """``--tile`` reaches the engine (one large tile, not several) and the CSV stays the same."""
    from napari_spines import inference

    sample = synthetic_two_photon(shape=(16, 160, 160), seed=2)
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, sample.image, imagej=True, metadata={"axes": "ZYX"})
    tiles: list[tuple] = []
    read_tile = inference.TiledRun.read_tile

    def counting(self, origin):
        tiles.append(tuple(origin))
        return read_tile(self, origin)

    monkeypatch.setattr(inference.TiledRun, "read_tile", counting)
    csvs = []
    for tile in ([], ["80", "400", "400"]):
        out = tmp_path / f"spines{len(tile)}.csv"
        args = ["detect", str(path), "-m", "spine-dog", "-o", str(out), "--voxel-size"]
        assert main([*args, "1", "0.24", "0.24", *(["--tile", *tile] if tile else [])]) == 0
        csvs.append((out.read_text(), len(tiles)))
        tiles.clear()
    (default, n_default), (large, n_large) = csvs
    assert n_default > n_large == 1 and large == default


def test_detect_cli_4d_has_t_and_bad_input_exits_2(tmp_path, capsys):
    sample = synthetic_two_photon(shape=(12, 96, 96), n_timepoints=2, seed=4)
    path = tmp_path / "t.tif"
    tifffile.imwrite(
        path,
        sample.image,
        imagej=True,
        resolution=(1 / 0.12, 1 / 0.12),
        metadata={"axes": "TZYX", "spacing": 1.0, "unit": "um"},
    )
    out = tmp_path / "t.csv"
    assert main(["detect", str(path), "-m", "spine-dog", "-o", str(out)]) == 0
    assert out.read_text().splitlines()[0] == "id,t,z,y,x,z_um,y_um,x_um,score"
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((64, 64), np.uint8))
    assert main(["detect", str(flat), "-m", "spine-dog", "-o", str(out)]) == 2
    assert "3D stack" in capsys.readouterr().err


def test_classical_baseline_on_real_session(real_data):
    """The baseline figure in the docs: spine-dog at its tuned threshold on rr30a_tp2."""
    session = load_session(real_data / "two_photon/rr30a/rr30a_tp2.tif")
    import tifffile as tf

    image = tf.imread(session.stack)
    found = detect_spines(image, "ZYX", "spine-dog", session.voxel_size_um)
    score = score_on_session(found.coords, session)
    assert 0.05 < score.f1 < 0.3, str(score)  # the classical detector is weak here


def test_builtin_model_reproduces_its_model_card_on_real_session(real_data):
    package = find_model("spine-2p")
    card = package.spec.metrics["validation"]
    session = load_session(real_data / "two_photon/rr30a/rr30a_tp2.tif")
    image = tifffile.imread(session.stack)
    # larger tiles than the package's: the same spines (benchmarks/tile_sizes.py,
    # docs/performance.md) in two thirds of the time, for 1.5 GB more memory
    found = detect_spines(image, "ZYX", "spine-2p", session.voxel_size_um, tile=(112, 384, 384))
    score = score_on_session(found.coords, session)
    assert score.f1 == pytest.approx(card["f1"], abs=0.03), str(score)
