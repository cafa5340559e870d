"""Export a torch network as a model package: ONNX and TorchScript weights plus model.yaml."""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_spines.errors import first_line
from napari_spines.io.atomic import atomic_folder, atomic_path
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

    The package is written into a temporary folder beside ``folder`` and swapped in once
    complete (`~napari_spines.io.atomic.atomic_folder`): a failure or a kill leaves the earlier
    package whole, and the new one appears complete or not at all.

    Parameters
    ----------
    module
        A ``torch.nn.Module`` mapping ``(B, C, Z, Y, X)`` to ``(B, C_out, Z, Y, X)``.
    folder
        Package folder; created when missing. An existing package's weights and spec are
        replaced; its other files are kept.
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
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        _write_package(module, tmp, spec, example_shape, runtimes, source=str(folder))
        if folder.is_dir():
            _keep_other_files(folder, tmp)
    return folder


#: The files `export_package` writes; an earlier package's other files are carried over.
PACKAGE_FILES = ("model.onnx", "model.pt", "model.yaml")


def _keep_other_files(old: Path, new: Path) -> None:
    """Hard-link (or copy) into ``new`` what ``old`` holds besides the package's own files."""
    for entry in old.iterdir():
        if entry.name in PACKAGE_FILES or (new / entry.name).exists():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, new / entry.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, new / entry.name)


def _link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    try:
        if os.path.islink(source):
            raise OSError("a link is copied as a link")
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


def _write_package(
    module: Any,
    folder: Path,
    spec: dict,
    example_shape: Sequence[int],
    runtimes: Sequence[str],
    source: str,
) -> None:
    """The weights and model.yaml of `export_package`, written into ``folder``."""
    import torch

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
    model_spec = ModelSpec.from_dict({**spec, "weights": weights}, source=source)
    write_spec(folder / "model.yaml", model_spec)


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
    import pickle

    import torch

    from napari_spines.models import ModelError, open_package

    try:
        if source.is_dir():
            scripted = torch.jit.load(
                str(open_package(source).weight_path("torch")), map_location="cpu"
            )
            return {k.removeprefix("net."): v for k, v in scripted.state_dict().items()}
        return torch.load(source, map_location="cpu", weights_only=True)["state_dict"]
    except pickle.UnpicklingError as exc:
        unsafe = "weights only load failed" in str(exc).lower()
        reason = "it holds objects that are unsafe to load; refused" if unsafe else first_line(exc)
        raise ValueError(f"{source.name}: not a napari-spines checkpoint ({reason})") from exc
    except FileNotFoundError as exc:
        raise ValueError(f"{source}: no such file or folder") from exc
    except (ModelError, RuntimeError, OSError, KeyError, TypeError, EOFError) as exc:
        raise ValueError(
            f"{source.name}: not a napari-spines checkpoint or package ({first_line(exc)})"
        ) from exc
