"""Map a bioimage.io model description (``rdf.yaml``, format 0.5) onto a `ModelSpec`.

Supported: ``type: model`` with one input whose axes are (batch, channel, z, y, x), preprocessing
by ``scale_range`` (percentile), ``zero_mean_unit_variance`` (per volume, or fixed mean/std) or
``fixed_zero_mean_unit_variance``, and onnx or torchscript weights stored in the package.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from napari_spines.models.spec import TASKS, ModelError, ModelSpec, sha256_file

_SPATIAL = ("z", "y", "x")
_MAX_TILE = 256


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.strip().lower()).strip("-") or "bioimageio-model"


def _axes(tensor: dict[str, Any], where: str) -> list[dict[str, Any]]:
    axes = tensor.get("axes")
    if not isinstance(axes, list) or not all(isinstance(a, dict) for a in axes):
        raise ModelError(f"{where}: axes must be a list of mappings (is this format 0.5?)")
    return axes


def _channels(axes: list[dict[str, Any]]) -> int:
    for axis in axes:
        if axis.get("type") == "channel":
            names = axis.get("channel_names")
            return len(names) if isinstance(names, list) else int(axis.get("size", 1))
    return 1


def _size_rule(size: Any, where: str) -> tuple[int, int]:
    """(min, step) of one spatial input axis; step 0 means a fixed size."""
    if isinstance(size, int):
        return size, 0
    if isinstance(size, dict) and isinstance(size.get("min"), int):
        return size["min"], int(size.get("step", 0))
    raise ModelError(f"{where}: spatial size {size!r} is not supported (need an int or min/step)")


def _tiling(axes: list[dict[str, Any]], halo: list[int], where: str) -> dict[str, list[int]]:
    tile, multiple = [], []
    for axis, h in zip(axes, halo, strict=True):
        low, step = _size_rule(axis.get("size"), f"{where} axis {axis.get('id')}")
        if step and low % step:
            raise ModelError(
                f"{where}: axis {axis.get('id')} sizes {low} + n*{step} are not "
                "multiples of one number; napari-spines cannot tile them"
            )
        unit = step or low
        size = max(low, unit)
        for _ in range(4 if step else 0):  # grow to min + 4*step, capped, unless the halo needs it
            if size + unit > _MAX_TILE and size > 2 * h:
                break
            size += unit
        while step and size <= 2 * h:
            size += unit
        tile.append(size)
        multiple.append(unit)
    return {"tile": tile, "multiple": multiple, "halo": halo}


def _voxel_size(axes: list[dict[str, Any]], where: str) -> list[float]:
    from napari_spines.io.units import unit_to_um

    sizes = []
    for axis in axes:
        factor = unit_to_um(axis.get("unit") or "micrometer")
        if factor is None:
            raise ModelError(f"{where}: unknown unit {axis.get('unit')!r} on axis {axis['id']}")
        sizes.append(float(axis.get("scale", 1.0)) * factor)
    return sizes


def _scalar(value: Any, where: str) -> float:
    if isinstance(value, list):
        if len(set(value)) != 1:
            raise ModelError(f"{where}: per-channel mean/std is not supported")
        value = value[0]
    return float(value)


def _normalisation(steps: Any, where: str) -> dict[str, Any]:
    norm: dict[str, Any] = {"kind": "none"}
    for step in steps or []:
        op, kwargs = step.get("id"), step.get("kwargs") or {}
        if op == "ensure_dtype":
            continue
        if norm["kind"] != "none":
            raise ModelError(f"{where}: more than one normalising preprocessing step")
        if op == "scale_range":
            norm = {
                "kind": "percentile",
                "low": float(kwargs.get("min_percentile", 0.0)),
                "high": float(kwargs.get("max_percentile", 100.0)),
            }
        elif op in ("zero_mean_unit_variance", "fixed_zero_mean_unit_variance"):
            if "mean" in kwargs and "std" in kwargs:
                norm = {
                    "kind": "mean_std",
                    "mean": _scalar(kwargs["mean"], where),
                    "std": _scalar(kwargs["std"], where),
                }
            else:
                norm = {"kind": "zscore"}
        else:
            raise ModelError(f"{where}: preprocessing {op!r} is not supported")
    return norm


def _weights(data: dict[str, Any], root: Path, where: str) -> dict[str, dict[str, str]]:
    weights = {}
    for key in ("onnx", "torchscript"):
        entry = (data.get("weights") or {}).get(key)
        if not entry:
            continue
        file = str(entry.get("source", ""))
        if "://" in file:
            raise ModelError(f"{where}: {key} weights are a URL; download the model's zip first")
        sha = entry.get("sha256")
        if not sha:
            if not (root / file).is_file():
                raise ModelError(f"{where}: {key} weight file {file!r} not found")
            sha = sha256_file(root / file)
        weights[key] = {"file": file, "sha256": sha}
    if not weights:
        have = ", ".join(data.get("weights") or {}) or "none"
        raise ModelError(f"{where}: no onnx or torchscript weights (has: {have})")
    return weights


def spec_from_rdf(data: dict[str, Any], root: Path) -> ModelSpec:
    """Build a `ModelSpec` from a parsed bioimage.io ``rdf.yaml`` (format 0.5) in ``root``.

    Parameters
    ----------
    data
        The parsed ``rdf.yaml`` (or ``bioimageio.yaml``) mapping.
    root
        The package folder; weight files are looked up in it, and hashed when the description
        gives no sha256.

    Returns
    -------
    ModelSpec

    Raises
    ------
    ModelError
        Not a model in format 0.5, or one napari-spines cannot run: not one 3-D
        ``(batch, channel, z, y, x)`` input, unsupported sizes or preprocessing, or no onnx or
        torchscript weights in the package.
    """
    where = str(Path(root) / "rdf.yaml")
    fmt = str(data.get("format_version", ""))
    if data.get("type") != "model" or not fmt.startswith("0.5"):
        raise ModelError(
            f"{where}: need a bioimage.io model in format 0.5 "
            f"(got type {data.get('type')!r}, format {fmt or '?'})"
        )
    inputs, outputs = data.get("inputs") or [], data.get("outputs") or []
    if len(inputs) != 1 or not outputs:
        raise ModelError(
            f"{where}: {len(inputs)} inputs, {len(outputs)} outputs; "
            "napari-spines runs models with one input and at least one output"
        )
    axes = _axes(inputs[0], where)
    space = [a for a in axes if a.get("type") == "space"]
    if [a.get("id") for a in space] != list(_SPATIAL):
        ids = ", ".join(str(a.get("id")) for a in space)
        raise ModelError(
            f"{where}: input has spatial axes ({ids}); napari-spines needs 3-D (z, y, x)"
        )
    if [a.get("type") for a in axes] != ["batch", "channel", "space", "space", "space"]:
        kinds = ", ".join(str(a.get("type")) for a in axes)
        raise ModelError(
            f"{where}: input axes are ({kinds}); napari-spines needs (batch, channel, z, y, x)"
        )
    halo = [0, 0, 0]
    for out in outputs:
        for axis in _axes(out, where):
            if axis.get("type") == "space" and axis.get("id") in _SPATIAL:
                i = _SPATIAL.index(axis["id"])
                halo[i] = max(halo[i], int(axis.get("halo", 0)))
    tags = [str(t) for t in data.get("tags") or []]
    ours = (data.get("config") or {}).get("napari-spines") or {}
    task = ours.get("task") or next((t for t in tags if t in TASKS), "restoration")
    offsets = ours.get("offsets") or {}
    authors = [
        a.get("name", str(a)) if isinstance(a, dict) else str(a) for a in data.get("authors") or []
    ]
    training = {}
    if isinstance(data.get("training_data"), dict):
        training["data"] = [str(data["training_data"].get("id", data["training_data"]))]
    if isinstance(data.get("parent"), dict):
        training["base_model"] = str(data["parent"].get("id"))
    spec = {
        "format_version": 1,
        "name": _slug(str(data.get("id") or data.get("name", ""))),
        "version": str(data.get("version") or "0.0.0"),
        "task": task,
        "description": str(data.get("description", "")),
        "license": str(data.get("license", "unknown")),
        "authors": authors,
        "training": training,
        "input": {
            "axes": "zyx",
            "channels": _channels(axes),
            "voxel_size_um": _voxel_size(space, where),
            "normalisation": _normalisation(inputs[0].get("preprocessing"), where),
        },
        "tiling": _tiling(space, halo, where),
        "outputs": [
            {
                "name": str(o.get("id", f"output{i}")),
                "channels": _channels(_axes(o, where)),
                "description": str(o.get("description", "")),
                "offsets": offsets.get(str(o.get("id"))),
            }
            for i, o in enumerate(outputs)
        ],
        "postprocessing": dict(ours.get("postprocessing") or {}),
        "metrics": {},
        "weights": _weights(data, Path(root), where),
    }
    return ModelSpec.from_dict(spec, where)
