"""The one way to run a model: find its package, load it, run the tiled engine over a stack.

Every caller goes through `run_model`: the widgets, the command line, the spine and
segmentation pipelines, and the validation of networks in training (which hand in a network
that is already in memory instead of a package name).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from napari_spines.models.package import ModelPackage
from napari_spines.models.spec import ModelError, ModelSpec
from napari_spines.progress import ProgressCallback


class ReadyModel(Protocol):
    """A model ready to run.

    What `~napari_spines.models.load_model` returns, or a network in training
    (`napari_spines.training.network.TrainingNetwork`).
    """

    @property
    def spec(self) -> ModelSpec:
        """The model's spec: input, tiling, outputs."""
        ...

    runtime: str
    provider: str

    def __call__(self, batch: np.ndarray, /) -> np.ndarray:
        """float32 ``(B, C_in, z, y, x)`` → ``(B, C_out, z, y, x)``."""
        ...


#: What `run_model` accepts: a registered name, a package path, an opened package, or a model
#: that is ready to run.
ModelChoice = str | os.PathLike | ModelPackage | ReadyModel


@dataclass(frozen=True)
class ModelRun:
    """The outputs of one run and what produced them.

    Parameters
    ----------
    spec
        The model's spec (output names and channels, postprocessing).
    outputs
        float32 ``(C_out, [T,] [Z,] Y, X)``: on the input's grid, or on the model's grid when
        run with ``on_model_grid``.
    factors
        Model voxels per data voxel on the ``z, y, x`` axes (1 where no rescaling happened).
    runtime, provider
        The runtime ("onnx", "torch") and execution provider or device that ran it.
    """

    spec: ModelSpec
    outputs: Any
    factors: tuple[float, float, float]
    runtime: str
    provider: str

    def output(self, name: str) -> Any:
        """The channels of the output called ``name``: ``(channels, ...)``; KeyError if none.

        Parameters
        ----------
        name
            An output name of the spec, e.g. ``"heatmap"``.

        Returns
        -------
        array

        Raises
        ------
        KeyError
            The spec has no output called ``name``.
        """
        first = 0
        for output in self.spec.outputs:
            if output.name == name:
                return self.outputs[first : first + output.channels]
            first += output.channels
        raise KeyError(f"{self.spec.name} has no output {name!r}")


def ready_model(
    model: ModelChoice, task: str | None = None, runtime: str = "auto", device: str = "auto"
) -> ReadyModel:
    """Find and load ``model`` (a ready model is returned as it is), checking its task.

    Parameters
    ----------
    model
        See `ModelChoice`.
    task
        The task the model must have been made for, e.g. ``"spine-detection"``; None: any.
    runtime, device
        See `~napari_spines.models.load_model`.

    Returns
    -------
    ReadyModel
        Loaded models are cached, so asking again is cheap.

    Raises
    ------
    ModelError
        No such model, broken package, unusable runtime or device, or another task.
    """
    from napari_spines.models.registry import find_model
    from napari_spines.models.runtimes import load_model

    if isinstance(model, str | os.PathLike):
        model = find_model(os.fspath(model), task=task)
    if isinstance(model, ModelPackage):
        model = load_model(model, runtime=runtime, device=device)
    if task is not None and model.spec.task != task:
        raise ModelError(f"model {model.spec.name!r} is a {model.spec.task} model, not {task}")
    return model


def run_model(
    model: ModelChoice,
    data: Any,
    axes: str,
    voxel_size_um: Sequence[float] | None = None,
    *,
    task: str | None = None,
    runtime: str = "auto",
    device: str = "auto",
    tile: Sequence[int] | None = None,
    batch_size: int = 1,
    out: Any | None = None,
    on_model_grid: bool = False,
    progress: ProgressCallback | None = None,
) -> ModelRun:
    """Find, load and run a model over a stack with the tiled engine.

    Parameters
    ----------
    model
        A registered name (``"spine-2p"``, ``"name@version"``), a package path, an opened
        `ModelPackage`, or a `ReadyModel`.
    data
        Array-like (numpy, dask, zarr, h5py) with axes ``axes``.
    axes
        Axis letters of ``data``: ``YX, ZYX, CZYX, TZYX`` or ``TCZYX``.
    voxel_size_um
        Voxel size of ``data`` (spatial axes); None means the model's own (no rescaling).
    task
        The task the model must have; None: any.
    runtime, device
        See `~napari_spines.models.load_model`.
    tile, batch_size, out, on_model_grid
        See `napari_spines.inference.predict_volume`.
    progress
        ``(done, total)`` callback; may raise `~napari_spines.progress.Cancelled` to stop.

    Returns
    -------
    ModelRun

    Raises
    ------
    ModelError
        The model cannot be found or loaded, or is made for another task.
    ValueError
        The data does not fit the model (axes, channels).
    """
    from napari_spines.inference import predict_volume, rescale_factors

    ready = ready_model(model, task, runtime, device)
    spec = ready.spec
    outputs = predict_volume(
        data,
        axes,
        ready,
        spec,
        voxel_size_um=voxel_size_um,
        tile=tile,
        batch_size=batch_size,
        out=out,
        progress=progress,
        on_model_grid=on_model_grid,
    )
    if voxel_size_um is not None and "Z" not in axes:  # 2D: one slice of the model's thickness
        voxel_size_um = (spec.network_voxel_size_um[0], *voxel_size_um[-2:])
    factors = rescale_factors(voxel_size_um, spec.network_voxel_size_um)
    return ModelRun(spec, outputs, factors, ready.runtime, ready.provider)
