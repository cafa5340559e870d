"""Export a torch network as a model package: ONNX and TorchScript weights plus model.yaml."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_spines.io.atomic import atomic_path
from napari_spines.models.spec import ModelSpec, sha256_file, write_spec


@dataclass(frozen=True)
class TrainedModel:
    """A model package made by training, and one line on how it scored on held-out data."""

    package: Path
    summary: str


def save_checkpoint(checkpoint: dict, path: Path) -> None:
    """``torch.save`` through a temporary file, so a crash never leaves a broken checkpoint.

    Parameters
    ----------
    checkpoint
        What to save: the state dict and its bookkeeping (step, width, validation scores).
    path
        Destination file; an existing one is replaced only once the new one is complete.
    """
    import torch

    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def flip_averaged(
    net: Any,
    flips: Sequence[tuple[int, ...]],
    realign: Callable[[Any, tuple[int, ...]], Any] | None = None,
) -> Any:
    """``net`` with a sigmoid, averaged over its predictions of flipped inputs.

    Parameters
    ----------
    net
        A torch module mapping ``(B, C, Z, Y, X)`` to logits ``(B, C_out, Z, Y, X)``.
    flips
        Dims of (batch, channel, z, y, x) to flip, one tuple per extra prediction.
    realign
        ``realign(prediction, dims)``, applied to each flipped-back prediction (affinities need a
        shift, `~napari_spines.training.affinity.shift_flipped_affinities`); None: none needed.

    Returns
    -------
    torch.nn.Module
        Its output is the mean of the ``len(flips) + 1`` sigmoid predictions, the unflipped one
        included.
    """
    import torch

    class FlipAveraged(torch.nn.Module):
        """Sigmoid outputs averaged over flips of the input (test-time augmentation)."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            total = torch.sigmoid(self.net(x))
            for dims in flips:
                out = torch.flip(torch.sigmoid(self.net(torch.flip(x, dims))), dims)
                total = total + (out if realign is None else realign(out, dims))
            return total / (len(flips) + 1)

    return FlipAveraged()


def export_package(
    module: Any,
    folder: str | Path,
    spec: dict,
    example_shape: Sequence[int],
    runtimes: Sequence[str] = ("onnx", "torch"),
) -> Path:
    """Write ``module`` into ``folder`` as a model package and return the folder.

    Parameters
    ----------
    module
        A ``torch.nn.Module`` mapping ``(B, C, Z, Y, X)`` to ``(B, C_out, Z, Y, X)``.
    folder
        Package folder; created when missing, existing weights are replaced.
    spec
        The model.yaml content without ``weights`` (they are filled in here, with sha256).
    example_shape
        Input shape used to trace the network, e.g. ``(1, 1, 16, 64, 64)``.
    runtimes
        Which weights to write: ``"onnx"`` (model.onnx) and/or ``"torch"`` (model.pt).

    Returns
    -------
    pathlib.Path
        The package folder.
    """
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    example = torch.zeros(*example_shape)
    weights: dict[str, dict] = {}
    if "onnx" in runtimes:
        path = folder / "model.onnx"
        # batch and every spatial axis are dynamic; channels are fixed
        dynamic = dict.fromkeys((0, *range(2, len(example_shape))), torch.export.Dim.DYNAMIC)
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=True,
                external_data=False,
                input_names=["input"],
                output_names=["output"],
                opset_version=18,
                dynamic_shapes=(dynamic,),
                verbose=False,
            )
        weights["onnx"] = {"file": path.name, "sha256": sha256_file(path)}
    if "torch" in runtimes:
        path = folder / "model.pt"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.trace is deprecated in torch >= 2.10
            torch.jit.trace(module, example).save(str(path))
        weights["torchscript"] = {"file": path.name, "sha256": sha256_file(path)}
    model_spec = ModelSpec.from_dict({**spec, "weights": weights}, source=str(folder))
    write_spec(folder / "model.yaml", model_spec)
    return folder


def load_weights(source: Path) -> dict:
    """The U-Net state dict of a training checkpoint or of a package it exported (on the CPU).

    Packages are read through their TorchScript weights with ``torch.jit.load``, never unpickled.

    Parameters
    ----------
    source
        A checkpoint file written by a trainer, or a package folder.

    Returns
    -------
    dict
        Parameter name → CPU tensor, named as in `build_unet`'s module.
    """
    import torch

    if source.is_dir():
        from napari_spines.models import open_package

        scripted = torch.jit.load(
            str(open_package(source).weight_path("torch")), map_location="cpu"
        )
        state = {k.removeprefix("net."): v for k, v in scripted.state_dict().items()}
    else:
        state = torch.load(source, map_location="cpu", weights_only=True)["state_dict"]
    return state
