"""ONNX Runtime and TorchScript runtimes: agreement, checks against model.yaml, devices, cache."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from napari_spines.models import (
    ModelError,
    ModelSpec,
    clear_cache,
    load_model,
    open_package,
    read_spec,
    sha256_file,
    usable_devices,
    write_spec,
)
from napari_spines.training.export import export_package
from tests.models.tiny import make_tiny_package, spec_fields

RUNTIMES = ["onnx", "torch"]


def _cuda(runtime: str) -> bool:
    devices = usable_devices()
    if runtime == "onnx":
        return "CUDAExecutionProvider" in devices.get("onnx", [])
    return "cuda" in devices.get("torch", [])


def _batch(channels: int = 1, shape=(16, 32, 32), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, channels, *shape)).astype(np.float32)


def test_onnx_and_torch_agree(tiny_package) -> None:
    package = open_package(tiny_package)
    onnx_model = load_model(package, runtime="onnx", device="cpu")
    torch_model = load_model(package, runtime="torch", device="cpu")
    assert (onnx_model.provider, torch_model.provider) == ("CPUExecutionProvider", "torch-cpu")
    batch = _batch()
    a, b = onnx_model(batch), torch_model(batch)
    assert a.dtype == b.dtype == np.float32 and a.shape == (1, 1, 16, 32, 32)
    assert np.abs(a).max() > 1e-3  # not a trivially zero network
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_multi_channel_model_agrees(tmp_path) -> None:
    package = open_package(
        make_tiny_package(tmp_path / "m", channels_in=2, channels_out=3, task="affinities", seed=3)
    )
    batch = _batch(channels=2, shape=(8, 12, 16))
    out = load_model(package, "onnx")(batch)
    assert out.shape == (1, 3, 8, 12, 16)
    np.testing.assert_allclose(out, load_model(package, "torch")(batch), atol=1e-4)


def test_auto_prefers_onnx(tiny_package) -> None:
    model = load_model(open_package(tiny_package))
    assert model.runtime == "onnx" and model.device in ("cpu", "cuda")


def test_wrong_batch_shape_is_refused(tiny_package) -> None:
    model = load_model(open_package(tiny_package), runtime="onnx")
    with pytest.raises(ValueError, match=r"expected a \(batch, 1, z, y, x\) array"):
        model(np.zeros((1, 2, 8, 8, 8), np.float32))


def test_cache_returns_the_same_object(tiny_package) -> None:
    package = open_package(tiny_package)
    first = load_model(package, runtime="onnx", device="cpu")
    assert load_model(package, runtime="onnx", device="cpu") is first
    assert load_model(open_package(tiny_package), runtime="onnx", device="cpu") is first
    assert load_model(package, runtime="torch", device="cpu") is not first
    clear_cache()
    assert load_model(package, runtime="onnx", device="cpu") is not first


def test_cache_notices_a_changed_weight_file(tiny_copy) -> None:
    package = open_package(tiny_copy)
    first = load_model(package, runtime="onnx", device="cpu")
    stat = (tiny_copy / "model.onnx").stat()
    os.utime(tiny_copy / "model.onnx", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert load_model(package, runtime="onnx", device="cpu") is not first


def test_cache_notices_a_changed_model_yaml(tiny_copy) -> None:
    first = load_model(open_package(tiny_copy), runtime="onnx", device="cpu")
    data = read_spec(tiny_copy / "model.yaml").to_dict()
    data["postprocessing"]["threshold"] = 0.9
    write_spec(tiny_copy / "model.yaml", ModelSpec.from_dict(data))
    second = load_model(open_package(tiny_copy), runtime="onnx", device="cpu")
    assert second is not first and second.package.spec.postprocessing["threshold"] == 0.9


def _with_garbage(folder: Path, file: str) -> Path:
    """Replace ``file`` by garbage and make model.yaml's sha256 match it."""
    (folder / file).write_bytes(np.random.default_rng(0).bytes(4096))
    data = yaml.safe_load((folder / "model.yaml").read_text())
    key = "onnx" if file.endswith(".onnx") else "torchscript"
    data["weights"][key]["sha256"] = sha256_file(folder / file)
    (folder / "model.yaml").write_text(yaml.safe_dump(data))
    return folder


@pytest.mark.parametrize(
    ("runtime", "file", "message"),
    [
        ("onnx", "model.onnx", r"model.onnx: not a valid ONNX model \("),
        ("torch", "model.pt", r"model.pt: not a valid TorchScript model \("),
    ],
)
def test_corrupt_weight_file(tiny_copy, runtime, file, message) -> None:
    package = open_package(_with_garbage(tiny_copy, file))  # the sha256 matches: opens fine
    with pytest.raises(ModelError, match=message):
        load_model(package, runtime=runtime, device="cpu")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_channel_mismatch(tmp_path, runtime) -> None:
    folder = make_tiny_package(tmp_path / "two", channels_in=2)
    data = read_spec(folder / "model.yaml").to_dict()
    data["input"]["channels"] = 1
    write_spec(folder / "model.yaml", ModelSpec.from_dict(data))
    with pytest.raises(ModelError, match="model expects 2 input channels but model.yaml says 1"):
        load_model(open_package(folder), runtime=runtime, device="cpu")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_output_channel_mismatch(tmp_path, runtime) -> None:
    folder = make_tiny_package(tmp_path / "out2", channels_out=2)
    data = read_spec(folder / "model.yaml").to_dict()
    data["outputs"][0]["channels"] = 1
    write_spec(folder / "model.yaml", ModelSpec.from_dict(data))
    with pytest.raises(ModelError, match="outputs add up to 1 channels"):
        load_model(open_package(folder), runtime=runtime, device="cpu")


def _net_2d() -> object:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(2, 1, 3, padding=1)
    )


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_2d_model_is_refused(tmp_path, runtime) -> None:
    fields = spec_fields(
        name="flat",
        task="restoration",
        channels_in=1,
        channels_out=1,
        voxel_size_um=(1, 1, 1),
        tile=(8, 16, 16),
        multiple=(4, 4, 4),
        halo=(2, 2, 2),
    )
    folder = export_package(_net_2d(), tmp_path / "flat", fields, (1, 1, 8, 8), [runtime])
    with pytest.raises(ModelError, match="model expects a 4-D input but model.yaml says 3-D zyx"):
        load_model(open_package(folder), runtime=runtime, device="cpu")


def test_shrinking_model_is_refused(tmp_path) -> None:
    import torch

    fields = spec_fields(
        name="valid",
        task="restoration",
        channels_in=1,
        channels_out=1,
        voxel_size_um=(1, 1, 1),
        tile=(16, 16, 16),
        multiple=(8, 8, 8),
        halo=(2, 2, 2),
    )
    net = torch.nn.Conv3d(1, 1, 3)  # no padding: the output is 2 voxels smaller
    folder = export_package(net, tmp_path / "valid", fields, (1, 1, 8, 8, 8), ["torch"])
    with pytest.raises(ModelError, match="differs from its input size"):
        load_model(open_package(folder), runtime="torch", device="cpu")


def test_missing_runtime_weights(tmp_path) -> None:
    package = open_package(make_tiny_package(tmp_path / "t", runtimes=("torch",)))
    assert load_model(package).runtime == "torch"
    with pytest.raises(ModelError, match="no onnx weights"):
        load_model(package, runtime="onnx")


def test_usable_devices_on_this_machine() -> None:
    devices = usable_devices()
    assert devices["onnx"][-1] == "CPUExecutionProvider"
    assert "AzureExecutionProvider" not in devices["onnx"]
    assert devices["torch"][0] == "cpu"


@pytest.mark.parametrize(
    ("runtime", "fix"), [("onnx", "pip install onnxruntime-gpu"), ("torch", "pytorch.org")]
)
def test_cuda_requested_without_cuda(tiny_package, runtime, fix) -> None:
    if _cuda(runtime):
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelError, match=f"CUDA requested but .*{fix}"):
        load_model(open_package(tiny_package), runtime=runtime, device="cuda")


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_onnx_cuda_silent_fallback_is_caught(tiny_package, monkeypatch, caplog) -> None:
    """onnxruntime lists CUDA but falls back to CPU (missing libraries): explicit -> error."""
    import onnxruntime

    if _cuda("onnx"):
        pytest.skip("this machine has a working CUDA provider")
    available = onnxruntime.get_available_providers()
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", *available]
    )
    package = open_package(tiny_package)
    with pytest.raises(ModelError, match="could not start its CUDA provider"):
        load_model(package, runtime="onnx", device="cuda")
    with caplog.at_level(logging.WARNING, logger="napari_spines.models.runtimes"):
        model = load_model(package, runtime="onnx", device="auto")
    assert (model.device, model.provider) == ("cpu", "CPUExecutionProvider")
    assert "running on CPU" in caplog.text


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("runtime", "provider"), [("onnx", "CUDAExecutionProvider"), ("torch", "torch-cuda")]
)
def test_runs_on_cuda_like_on_cpu(tiny_package, runtime, provider) -> None:
    if not _cuda(runtime):
        pytest.skip("no CUDA device")
    package = open_package(tiny_package)
    gpu = load_model(package, runtime=runtime, device="cuda")
    assert gpu.provider == provider
    assert load_model(package, runtime=runtime).device == "cuda"  # auto picks it
    batch = _batch()
    np.testing.assert_allclose(gpu(batch), load_model(package, runtime, "cpu")(batch), atol=1e-3)


def test_importing_models_imports_no_runtime() -> None:
    import subprocess
    import sys

    code = (
        "import sys, napari_spines.models\n"
        "print(sorted({'torch', 'onnxruntime', 'onnx'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
