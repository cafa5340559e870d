"""Run a model package with ONNX Runtime or TorchScript on CPU, CUDA or Apple MPS.

`load_model` picks the runtime and device, checks the network against ``model.yaml`` with one
small dry run, and caches the result. torch and onnxruntime are imported only when needed.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from napari_spines.errors import first_line
from napari_spines.models.package import ModelPackage
from napari_spines.models.spec import ModelError, ModelSpec

logger = logging.getLogger(__name__)

Runtime = Callable[[np.ndarray], np.ndarray]

ORT_GPU_FIX = "run: pip uninstall -y onnxruntime && pip install onnxruntime-gpu"
TORCH_GPU_FIX = "install a CUDA build of torch from https://pytorch.org"
# A one-node ONNX graph (y = Identity(x)) to probe which execution providers really work.
_PROBE_ONNX = (
    b'\x08\x07:7\n\x10\n\x01x\x12\x01y"\x08Identity\x12\x01pZ\x0f\n\x01x\x12\n\n\x08\x08'
    b"\x01\x12\x04\n\x02\x08\x01b\x0f\n\x01y\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01B"
    b"\x04\n\x00\x10\r"
)
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
}

_CACHE: dict[tuple[str, int, str, str], LoadedModel] = {}
_LOCK = threading.Lock()


@dataclass(eq=False)
class LoadedModel:
    """A model ready to run: call it with a float32 (B, C_in, z, y, x) batch."""

    package: ModelPackage
    runtime: str
    device: str
    provider: str
    run: Runtime = field(repr=False)

    @property
    def spec(self) -> ModelSpec:
        """The package's spec."""
        return self.package.spec

    def __repr__(self) -> str:
        spec = self.package.spec
        return (
            f"LoadedModel({spec.name}@{spec.version}, runtime={self.runtime!r}, "
            f"device={self.device!r}, provider={self.provider!r})"
        )

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Run on a (B, C_in, z, y, x) batch; return float32 (B, C_out, z, y, x)."""
        channels = self.package.spec.input.channels
        if batch.ndim != 5 or batch.shape[1] != channels:
            raise ValueError(f"expected a (batch, {channels}, z, y, x) array, got {batch.shape}")
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        spec = self.package.spec
        if not spec.test_time_flips:
            return np.asarray(self.run(batch), dtype=np.float32)
        from napari_spines.models.test_time import flip_averaged

        offsets = [o for out in spec.outputs for o in (out.offsets or [None] * out.channels)]
        return flip_averaged(self.run, batch, spec.test_time_flips, offsets)


def clear_cache() -> None:
    """Forget every loaded model (frees their memory once no one else holds them)."""
    with _LOCK:
        _CACHE.clear()


def _ort() -> ModuleType | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _ort_providers_that_work(ort: ModuleType) -> list[str]:
    usable = []
    for name in ort.get_available_providers():
        if name in ("CPUExecutionProvider", "AzureExecutionProvider"):
            continue
        try:
            session = ort.InferenceSession(_PROBE_ONNX, providers=[name, "CPUExecutionProvider"])
        except Exception:  # a provider whose libraries are missing may raise
            continue
        if name in session.get_providers():
            usable.append(name)
    return [*usable, "CPUExecutionProvider"]


def usable_devices() -> dict[str, list[str]]:
    """What really works here: ONNX Runtime providers and torch devices (absent if missing)."""
    devices: dict[str, list[str]] = {}
    if (ort := _ort()) is not None:
        devices["onnx"] = _ort_providers_that_work(ort)
    try:
        import torch
    except ImportError:
        return devices
    devices["torch"] = ["cpu"]
    if torch.cuda.is_available():
        devices["torch"].append("cuda")
    if torch.backends.mps.is_available():
        devices["torch"].append("mps")
    return devices


def _pick_runtime(package: ModelPackage, runtime: str) -> str:
    runtime = {"torchscript": "torch"}.get(runtime, runtime)
    if runtime not in ("auto", "onnx", "torch"):
        raise ModelError(f"unknown runtime {runtime!r} (expected auto, onnx or torch)")
    if runtime == "auto":
        if "onnx" in package.runtimes and _ort() is not None:
            return "onnx"
        runtime = "torch" if "torch" in package.runtimes else "onnx"
    package.weight_path(runtime)  # ModelError if the package lacks these weights
    if runtime == "onnx" and _ort() is None:
        raise ModelError("onnxruntime is not installed: pip install onnxruntime")
    if runtime == "torch":
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise ModelError("torch is not installed: pip install 'napari-spines[torch]'") from exc
    return runtime


def _pick_device(runtime: str, device: str) -> str:
    if device not in ("auto", "cpu", "cuda", "mps"):
        raise ModelError(f"unknown device {device!r} (expected auto, cpu, cuda or mps)")
    if runtime == "onnx":
        has_cuda = "CUDAExecutionProvider" in _ort().get_available_providers()
        if device == "mps":
            raise ModelError("ONNX Runtime cannot use mps; choose runtime 'torch' for Apple GPUs")
        if device == "cuda" and not has_cuda:
            raise ModelError(
                "CUDA requested but onnxruntime has no CUDA provider (the CPU-only "
                f"'onnxruntime' package is installed); {ORT_GPU_FIX}"
            )
        return device if device != "auto" else ("cuda" if has_cuda else "cpu")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        why = (
            "this torch is a CPU-only build"
            if torch.version.cuda is None
            else "torch found no usable CUDA device or driver"
        )
        raise ModelError(f"CUDA requested but {why}; {TORCH_GPU_FIX}")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ModelError("mps requested but this torch or machine has no Apple GPU support")
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"


def _load_onnx(package: ModelPackage, device: str, explicit: bool) -> LoadedModel:
    import onnxruntime as ort

    path, spec = package.weight_path("onnx"), package.spec
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The CPU arena keeps the largest tile's activations twice over: off, spine-2p's detect on a
    # 70 x 1024 x 1024 stack peaks at half the memory. The memory pattern (one block planned per
    # tile shape) costs little memory and saves 12% of the time (docs/performance.md).
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = True
    # errors are raised as exceptions and explained; ONNX Runtime's own log would print the
    # load-time probe's failure on a too small tile (long-range shifts) in red as well
    options.log_severity_level = 4
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types (InvalidProtobuf, ...)
        raise ModelError(f"{path.name}: not a valid ONNX model ({first_line(exc)})") from exc
    if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        message = (
            "onnxruntime could not start its CUDA provider (CUDA or cuDNN libraries "
            f"missing or mismatched); {ORT_GPU_FIX}, matching your CUDA version"
        )
        if explicit:
            raise ModelError(message)
        logger.warning("%s; running on CPU", message)
        device = "cpu"
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{path.name}: model has {len(inputs)} inputs; napari-spines feeds one")
    shape, name = inputs[0].shape, inputs[0].name
    if len(shape) != 5:
        raise ModelError(
            f"{path.name}: model expects a {len(shape)}-D input but model.yaml says "
            "3-D zyx, fed as 5-D (batch, channel, z, y, x)"
        )
    if isinstance(shape[1], int) and shape[1] != spec.input.channels:
        raise ModelError(
            f"{path.name}: model expects {shape[1]} input channels but model.yaml "
            f"says {spec.input.channels}"
        )
    if (dtype := _ORT_DTYPES.get(inputs[0].type)) is None:
        raise ModelError(f"{path.name}: input type {inputs[0].type} is not supported")

    def run(batch: np.ndarray) -> np.ndarray:
        outs = session.run(None, {name: batch.astype(dtype, copy=False)})
        return np.concatenate(outs, axis=1) if len(outs) > 1 else outs[0]

    provider = session.get_providers()[0]
    return LoadedModel(package, "onnx", device, provider, run)


def _torch_in_channels(module: Any) -> tuple[int, int] | None:
    """(ndim, in_channels) of the first convolution-like weight of a TorchScript module."""
    for param in module.parameters():
        if param.ndim >= 3:
            return param.ndim, int(param.shape[1])
    return None


def _load_torch(package: ModelPackage, device: str) -> tuple[LoadedModel, tuple[int, int] | None]:
    import torch

    path, spec = package.weight_path("torch"), package.spec
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated in torch >= 2.10, still works
            warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device).eval()
    except Exception as exc:  # torch raises RuntimeError / ValueError for non-TorchScript files
        message = f"{path.name}: not a valid TorchScript model ({first_line(exc)})"
        raise ModelError(message) from exc
    half = device == "cuda" and spec.weights["torchscript"].half
    dtype = torch.float16 if half else torch.float32
    module = module.to(dtype)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = module(torch.from_numpy(batch).to(device=device, dtype=dtype))
            if isinstance(out, list | tuple):
                out = torch.cat(list(out), dim=1)
            return out.float().cpu().numpy()

    provider = f"torch-{device}" + ("-float16" if half else "")
    return LoadedModel(package, "torch", device, provider, run), _torch_in_channels(module)


def _dry_run(model: LoadedModel, first: tuple[int, int] | None = None) -> None:
    """Run once on zeros; `ModelError` if the network disagrees with ``model.yaml``.

    ``first`` is (ndim, in_channels) of the network's first weight, to explain a failure.
    """
    spec, name = model.package.spec, model.package.weight_path(model.runtime).name
    tiling = spec.tiling
    sizes = [
        tuple(tiling.multiple),
        tuple(
            min(t, m * math.ceil((2 * h + m) / m))
            for t, m, h in zip(tiling.tile, tiling.multiple, tiling.halo, strict=True)
        ),
    ]
    error: Exception | None = None
    for size in dict.fromkeys(sizes):
        shape = (1, spec.input.channels, *size)
        try:
            out = model(np.zeros(shape, np.float32))
            break
        except Exception as exc:  # the network's own error: explained below
            error = exc
    else:
        if first is not None and first[0] != 5:
            raise ModelError(
                f"{name}: model expects a {first[0]}-D input but model.yaml "
                "says 3-D zyx, fed as 5-D (batch, channel, z, y, x)"
            ) from error
        if first is not None and first[1] != spec.input.channels:
            raise ModelError(
                f"{name}: model expects {first[1]} input channels but model.yaml "
                f"says {spec.input.channels}"
            ) from error
        raise ModelError(
            f"{name}: test run on zeros of shape {shape} failed ({first_line(error)})"
        ) from error
    if out.ndim != 5 or out.shape[1] != spec.n_output_channels:
        raise ModelError(
            f"{name}: model gives output of shape {out.shape} but model.yaml's "
            f"outputs add up to {spec.n_output_channels} channels"
        )
    if out.shape[2:] != shape[2:]:
        raise ModelError(
            f"{name}: model output size {out.shape[2:]} differs from its input "
            f"size {shape[2:]}; napari-spines needs same-size outputs"
        )


def load_model(package: ModelPackage, runtime: str = "auto", device: str = "auto") -> LoadedModel:
    """Load ``package`` with ``runtime`` ("auto", "onnx", "torch") on ``device``.

    The model is checked with a small dry run and cached: loading it again returns the same
    object.

    Parameters
    ----------
    package
        An opened package, e.g. from `~napari_spines.models.registry.find_model`.
    runtime
        "auto" (ONNX Runtime when the package has onnx weights and it is installed, else
        torch), "onnx", or "torch" (also "torchscript").
    device
        "auto" (CUDA, else MPS for torch, else CPU), "cpu", "cuda" or "mps".

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelError
        Unknown runtime or device, no weights or no installed runtime for it, a device that is
        not available, or a network that does not match ``model.yaml``.
    """
    runtime = _pick_runtime(package, runtime)
    chosen = _pick_device(runtime, device)
    path = package.weight_path(runtime).resolve()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ModelError(f"{path.name}: weight file missing ({exc.strerror})") from exc
    key = (str(path), mtime, runtime, chosen if device != "auto" else "auto")
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached.package.spec == package.spec:  # model.yaml unchanged
            return cached
        if runtime == "onnx":
            model, first = _load_onnx(package, chosen, explicit=device != "auto"), None
        else:
            model, first = _load_torch(package, chosen)
        _dry_run(model, first)
        for old in [
            k
            for k, m in _CACHE.items()
            if k[0] == key[0] and (k[1] != mtime or m.package.spec != package.spec)
        ]:
            del _CACHE[old]  # the weight file or model.yaml changed since: drop the stale model
        _CACHE[key] = model
        _CACHE.setdefault((str(path), mtime, runtime, model.device), model)
        return model
