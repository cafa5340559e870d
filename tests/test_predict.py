"""`napari-spines predict` and the engine with real (tiny) ONNX and TorchScript models."""

import numpy as np
import pytest
import tifffile
import zarr
from scipy import ndimage as ndi

from napari_spines.cli import main
from napari_spines.inference import predict
from napari_spines.io import read_volumes
from napari_spines.models import find_model, load_model, open_package
from napari_spines.training import classical


@pytest.fixture
def stack_file(tmp_path):
    data = np.random.default_rng(3).integers(0, 3000, (12, 40, 36), dtype=np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.12, 1 / 0.12),
        metadata={"axes": "ZYX", "spacing": 1.0, "unit": "um"},
    )
    return path, data


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_tiled_equals_whole_with_real_models(tiny_package, runtime, stack_file):
    _, data = stack_file
    package = open_package(tiny_package)
    model = load_model(package, runtime=runtime, device="cpu")
    small = predict(data, model, package.spec, tile=(8, 16, 16))
    whole = predict(data, model, package.spec, tile=(64, 64, 64))
    other = predict(data, model, package.spec, tile=(12, 24, 20), batch_size=2)
    assert np.abs(small - whole).max() < 1e-4
    assert np.abs(other - whole).max() < 1e-4


def test_onnx_and_torch_agree_through_the_engine(tiny_package, stack_file):
    _, data = stack_file
    package = open_package(tiny_package)
    outputs = [
        predict(data, load_model(package, runtime=r, device="cpu"), package.spec)
        for r in ("onnx", "torch")
    ]
    assert np.abs(outputs[0] - outputs[1]).max() < 1e-4


def test_predict_cli_writes_channels_first_float32_with_voxel_size(
    tiny_package, stack_file, tmp_path
):
    path, data = stack_file
    out = tmp_path / "pred.tif"
    assert (
        main(
            [
                "predict",
                str(path),
                "-m",
                str(tiny_package),
                "-o",
                str(out),
                "--tile",
                "8",
                "16",
                "16",
            ]
        )
        == 0
    )
    package = open_package(tiny_package)
    expected = predict(data, load_model(package, device="cpu"), package.spec)
    with tifffile.TiffFile(out) as tif:
        written = tif.series[0].asarray()
        assert tif.is_ome
    assert written.dtype == np.float32
    np.testing.assert_allclose(written.reshape(expected.shape), expected, atol=1e-5)
    (volume,) = read_volumes(out)
    assert volume.voxel_size_um == pytest.approx((1.0, 0.12, 0.12), rel=1e-4)


def test_predict_cli_zarr_output_is_written_tile_by_tile(tiny_package, stack_file, tmp_path):
    path, data = stack_file
    out = tmp_path / "pred.zarr"
    assert main(["predict", str(path), "-m", str(tiny_package), "-o", str(out)]) == 0
    package = open_package(tiny_package)
    expected = predict(data, load_model(package, device="cpu"), package.spec)
    written = zarr.open_array(str(out), mode="r")
    assert written.attrs["axes"] == "CZYX"
    np.testing.assert_allclose(written[:], expected, atol=1e-5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "no-such-model"], "no-such-model"),
        (["-m", "spine-dog", "--device", "cuda"], "CUDA"),
    ],
)
def test_predict_cli_bad_model_or_device_is_one_line(stack_file, tmp_path, capsys, args, message):
    path, _ = stack_file
    assert main(["predict", str(path), *args, "-o", str(tmp_path / "x.tif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_predict_cli_refuses_unknown_output_format(stack_file, tmp_path, capsys):
    path, _ = stack_file
    assert main(["predict", str(path), "-m", "spine-dog", "-o", str(tmp_path / "x.png")]) == 2


def test_builtin_dog_equals_scipy_difference_of_gaussians():
    """The shipped ONNX model, tiled, is exactly the classical filter on the normalised stack."""
    package = find_model("spine-dog")
    assert package.source == "built-in"
    rng = np.random.default_rng(4)
    volume = ndi.gaussian_filter(rng.random((20, 90, 70)), 1.5).astype(np.float32)

    def blur(x, scale):
        for axis, sigma in enumerate(classical.sigmas_px(scale)):
            x = ndi.correlate1d(x, classical.gaussian_kernel(sigma), axis=axis, mode="mirror")
        return x

    low, high = np.percentile(volume, [1.0, 99.8])
    normalised = (volume - low) / (high - low)
    expected = blur(normalised, 1.0) - blur(normalised, classical.SIGMA_RATIO)
    for runtime in package.runtimes:
        model = load_model(package, runtime=runtime, device="cpu")
        got = predict(
            volume, model, package.spec, voxel_size_um=(1.0, 0.24, 0.24), tile=(8, 32, 32)
        )
        np.testing.assert_allclose(got[0], expected, atol=1e-4)


def test_predict_builtin_on_real_stack(real_data, tmp_path):
    out = tmp_path / "dog.zarr"
    assert (
        main(
            [
                "predict",
                str(real_data / "two_photon/rr30a/rr30a_tp2.tif"),
                "-m",
                "spine-dog",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    written = zarr.open_array(str(out), mode="r")
    assert written.shape[0] == 1 and written.shape[2:] == (1024, 1024)
    assert np.isfinite(written[0, 30]).all() and written[0, 30].std() > 0
