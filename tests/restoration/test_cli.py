"""``napari-spines crappify``, ``restore`` and ``train restoration`` on good and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_spines.cli import main
from napari_spines.io import read_volumes
from napari_spines.restoration.baselines import linear
from tests.restoration.packages import GOOD_VOXEL, INPUT_VOXEL


def write_stack(path: Path, data: np.ndarray, voxel=None, axes: str = "ZYX") -> Path:
    """An ImageJ TIFF, with its voxel size ``(z, y, x)`` in µm when given."""
    if voxel is None:
        tifffile.imwrite(path, data, imagej=True, metadata={"axes": axes})
    else:
        tifffile.imwrite(
            path,
            data,
            imagej=True,
            resolution=(1 / voxel[2], 1 / voxel[1]),
            metadata={"axes": axes, "spacing": voxel[0], "unit": "um"},
        )
    return path


def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Exit code and stderr of ``napari-spines ARGV`` run in this process."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    good_em = rng.integers(0, 256, (3, 64, 72), dtype=np.uint8)
    coarse = (rng.random((2, 32, 32)) * 1000 + 100).astype(np.float32)
    two_photon = rng.integers(0, 4000, (6, 32, 32), dtype=np.uint16)
    return {
        "good_em": write_stack(tmp_path / "good_em.tif", good_em, GOOD_VOXEL),
        "coarse": write_stack(tmp_path / "coarse.tif", coarse, INPUT_VOXEL),
        "two_photon": write_stack(tmp_path / "2p.tif", two_photon, (1.0, 0.12, 0.12)),
        "no_voxel": write_stack(tmp_path / "no_voxel.tif", two_photon),
        "czyx": write_stack(
            tmp_path / "czyx.tif", np.stack([coarse, coarse], axis=1), INPUT_VOXEL, "ZCYX"
        ),
        "tzyx": write_stack(tmp_path / "tzyx.tif", np.stack([coarse, coarse]), INPUT_VOXEL, "TZYX"),
    }


# --- good input ---


def test_crappify_em_4x_writes_coarser_voxels_in_the_input_dtype(files, tmp_path, capsys):
    out = tmp_path / "crappy.tif"
    code, err = run_cli(
        ["crappify", files["good_em"], "-o", out, "--preset", "em-4x", "--seed", 3], capsys
    )
    assert code == 0, err
    (volume,) = read_volumes(out)
    assert volume.axes == "ZYX"
    assert volume.voxel_size_um == pytest.approx(INPUT_VOXEL)
    data = np.asarray(volume.data)
    assert data.shape == (3, 16, 18) and data.dtype == np.uint8
    assert "em-4x" in err and str(out) in err
    again = tmp_path / "again.tif"
    argv = ["crappify", files["good_em"], "-o", again, "--preset", "em-4x", "--seed", 3]
    assert run_cli(argv, capsys)[0] == 0
    np.testing.assert_array_equal(np.asarray(read_volumes(again)[0].data), data)  # seeded


def test_crappify_two_photon_keeps_uint16_and_every_other_slice(files, tmp_path, capsys):
    out = tmp_path / "crappy.tif"
    argv = ["crappify", files["two_photon"], "-o", out, "--z-step", 2, "--photon-fraction", 0.5]
    code, err = run_cli(argv, capsys)
    assert code == 0, err
    (volume,) = read_volumes(out)
    assert np.asarray(volume.data).shape == (3, 32, 32)
    assert np.asarray(volume.data).dtype == np.uint16
    assert volume.voxel_size_um == pytest.approx((2.0, 0.12, 0.12))


def test_crappify_a_float_stack_stays_float(files, tmp_path, capsys):
    out = tmp_path / "crappy.tif"
    code, err = run_cli(["crappify", files["coarse"], "-o", out, "--preset", "em-2x"], capsys)
    assert code == 0, err
    (volume,) = read_volumes(out)
    assert np.asarray(volume.data).dtype == np.float32
    assert np.asarray(volume.data).shape == (2, 16, 16)
    assert volume.voxel_size_um == pytest.approx((0.05, 0.032, 0.032))


def test_restore_writes_the_upscaled_stack_with_the_fine_voxel_size(
    files, identity_em_package, tmp_path, capsys
):
    out = tmp_path / "restored.tif"
    code, err = run_cli(["restore", files["coarse"], "-m", identity_em_package, "-o", out], capsys)
    assert code == 0, err
    (volume,) = read_volumes(out)
    assert volume.axes == "ZYX"
    assert volume.voxel_size_um == pytest.approx(GOOD_VOXEL)
    restored = np.asarray(volume.data)
    assert restored.shape == (2, 128, 128) and restored.dtype == np.float32
    coarse = tifffile.imread(files["coarse"])
    np.testing.assert_allclose(restored, linear(coarse, (1, 4, 4)), rtol=1e-3, atol=1.0)
    assert "restore-em@0.1.0" in err


def test_a_2d_image_is_crappified_then_restored(tmp_path, identity_em_package, capsys):
    good = np.random.default_rng(2).integers(0, 256, (64, 64), dtype=np.uint8)
    path = tmp_path / "yx.tif"
    tifffile.imwrite(
        path, good, imagej=True, resolution=(1 / 0.004, 1 / 0.004), metadata={"axes": "YX"}
    )
    crappy, restored = tmp_path / "crappy.tif", tmp_path / "restored.tif"
    code, err = run_cli(["crappify", path, "-o", crappy, "--preset", "em-4x"], capsys)
    assert code == 0, err
    (volume,) = read_volumes(crappy)
    assert volume.axes == "YX" and np.asarray(volume.data).shape == (16, 16)
    assert volume.voxel_size_um == pytest.approx(INPUT_VOXEL[1:])
    code, err = run_cli(["restore", crappy, "-m", identity_em_package, "-o", restored], capsys)
    assert code == 0, err
    (volume,) = read_volumes(restored)
    assert volume.axes == "YX" and np.asarray(volume.data).shape == (64, 64)
    assert volume.voxel_size_um == pytest.approx(GOOD_VOXEL[1:])


def test_restore_a_time_series(files, identity_em_package, tmp_path, capsys):
    out = tmp_path / "restored.tif"
    code, err = run_cli(["restore", files["tzyx"], "-m", identity_em_package, "-o", out], capsys)
    assert code == 0, err
    (volume,) = read_volumes(out)
    assert volume.axes == "TZYX"
    assert np.asarray(volume.data).shape == (2, 2, 128, 128)
    assert volume.voxel_size_um == pytest.approx(GOOD_VOXEL)


def test_restore_without_voxel_size_warns_and_assumes_the_models(
    tmp_path, identity_em_package, capsys
):
    coarse = np.random.default_rng(1).random((2, 32, 32)).astype(np.float32)
    path = write_stack(tmp_path / "bare.tif", coarse)
    out = tmp_path / "restored.tif"
    code, err = run_cli(["restore", path, "-m", identity_em_package, "-o", out], capsys)
    assert code == 0, err
    assert "no voxel size" in err and "--voxel-size" in err
    assert np.asarray(read_volumes(out)[0].data).shape == (2, 128, 128)


# --- bad input: exit 2, one error line, no traceback, nothing written ---

BAD = [
    ("crappify-missing", "crappify {tmp}/nope.tif -o {out}.tif", "no such file"),
    ("crappify-suffix", "crappify {good_em} -o {out}.png", r"\.tif"),
    ("crappify-preset", "crappify {good_em} -o {out}.tif --preset em-8x", "preset.*em-8x"),
    ("crappify-4d", "crappify {tzyx} -o {out}.tif", "ZYX"),
    ("crappify-z-step-em", "crappify {good_em} -o {out}.tif --preset em-4x --z-step 2", "z_step"),
    ("crappify-factor-zero", "crappify {good_em} -o {out}.tif --factor 0", "factor"),
    ("crappify-seed-negative", "crappify {good_em} -o {out}.tif --seed -1", "seed"),
    ("restore-missing", "restore {tmp}/nope.tif -m {pkg} -o {out}.tif", "no such file"),
    ("restore-suffix", "restore {coarse} -m {pkg} -o {out}.npy", r"\.tif"),
    ("restore-czyx", "restore {czyx} -m {pkg} -o {out}.tif", "one channel"),
    ("restore-not-restoration", "restore {coarse} -m spine-dog -o {out}.tif", "restoration"),
    ("restore-unknown-model", "restore {coarse} -m no-such-model -o {out}.tif", "no-such-model"),
    (
        "train-no-voxel-size",
        "train restoration --kind two-photon --train {no_voxel} --validate {two_photon} "
        "--out {out}",
        "no voxel size",
    ),
    (
        "train-z-outside",
        "train restoration --kind two-photon --train {two_photon} --train-z 2 50 "
        "--validate {two_photon} --out {out}",
        "Z0 Z1 = 2 50",
    ),
    (
        "train-z-empty",
        "train restoration --kind two-photon --train {two_photon} --train-z 3 3 "
        "--validate {two_photon} --out {out}",
        "Z0 Z1 = 3 3",
    ),
    (
        "validate-z-outside",
        "train restoration --kind two-photon --train {two_photon} "
        "--validate {two_photon} --validate-z -1 2 --out {out}",
        "Z0 Z1 = -1 2",
    ),
    (
        "train-voxel-sizes-differ",
        "train restoration --kind em --train {good_em} --validate {two_photon} --out {out}",
        "voxel size",
    ),
    (
        "train-missing",
        "train restoration --kind em --train {tmp}/nope.tif --validate {good_em} --out {out}",
        "no such file",
    ),
    (
        "train-unknown-kind",
        "train restoration --kind confocal --train {good_em} --validate {good_em} --out {out}",
        "kind.*confocal",
    ),
    (
        "train-minutes-zero",
        "train restoration --kind em --train {good_em} --validate {good_em} --out {out} "
        "--minutes 0",
        "minutes",
    ),
]


@pytest.mark.parametrize(("template", "words"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_exits_with_one_line(
    template, words, files, identity_em_package, tmp_path, capsys
):
    values = {name: str(path) for name, path in files.items()}
    values.update(tmp=str(tmp_path), out=str(tmp_path / "out"), pkg=str(identity_em_package))
    argv = [word.format(**values) for word in template.split()]
    code, err = run_cli(argv, capsys)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(errors) == 1, err
    assert re.search(words, errors[0], re.IGNORECASE), errors[0]
    assert not list(tmp_path.glob("out*")), "a failed run left an output behind"
