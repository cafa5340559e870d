"""The ``model.yaml`` of a model package, as frozen dataclasses, with validation.

`ModelSpec.from_dict` checks everything a model package promises (fields, lengths, tile sizes,
output channels) and raises `ModelError` with a one-line message naming the file and the field.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_spines.validation import MAX_TILE

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
TASKS = ("spine-detection", "affinities", "restoration", "cell-detection")
NORMALISATION_KINDS = ("percentile", "mean_std", "zscore", "none")
WEIGHT_FORMATS = ("onnx", "torchscript")
_NAME = re.compile(r"^[a-z0-9_.-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEYS = (
    "format_version",
    "name",
    "version",
    "task",
    "description",
    "license",
    "authors",
    "training",
    "input",
    "tiling",
    "outputs",
    "postprocessing",
    "metrics",
    "weights",
    "test_time_flips",
)


class ModelError(ValueError):
    """A model package is missing, invalid or cannot run; the message is meant for users."""


@dataclass(frozen=True)
class Normalisation:
    """Input intensity normalisation: ``percentile``, ``mean_std``, ``zscore`` or ``none``."""

    kind: str
    low: float = 1.0
    high: float = 99.8
    mean: float = 0.0
    std: float = 1.0


@dataclass(frozen=True)
class InputSpec:
    """The network input: spatial axes, channels, voxel size (µm) and normalisation."""

    axes: str
    channels: int
    voxel_size_um: tuple[float, float, float]
    normalisation: Normalisation


@dataclass(frozen=True)
class TilingSpec:
    """Default tile, the size multiple every input must respect, and the halo cropped per side."""

    tile: tuple[int, int, int]
    multiple: tuple[int, int, int]
    halo: tuple[int, int, int]


@dataclass(frozen=True)
class OutputSpec:
    """One named group of output channels; affinities carry one (z, y, x) offset per channel.

    A restoration output may be finer than the input (``voxel_size_um``, e.g. 4× in y and x).
    """

    name: str
    channels: int
    description: str = ""
    offsets: tuple[tuple[int, int, int], ...] | None = None
    voxel_size_um: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class WeightsSpec:
    """A weight file inside the package, its sha256, and whether it may run in float16 on GPU."""

    file: str
    sha256: str
    half: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """Everything ``model.yaml`` says about a model package."""

    name: str
    version: str
    task: str
    description: str
    license: str
    authors: tuple[str, ...]
    training: dict[str, Any]
    input: InputSpec
    tiling: TilingSpec
    outputs: tuple[OutputSpec, ...]
    postprocessing: dict[str, Any]
    metrics: dict[str, Any]
    weights: dict[str, WeightsSpec]
    #: Extra predictions of flipped inputs that the engine averages with the plain one: each
    #: entry names the axes flipped together, e.g. ``("x", "yx")``; empty for none
    #: (`napari_spines.models.test_time`).
    test_time_flips: tuple[str, ...] = ()

    @property
    def n_output_channels(self) -> int:
        """Total output channels of the network (the outputs' channels added up)."""
        return sum(o.channels for o in self.outputs)

    @property
    def network_voxel_size_um(self) -> tuple[float, float, float]:
        """The grid the network runs on: its outputs' voxel size (the input's unless finer)."""
        return self.outputs[0].voxel_size_um or self.input.voxel_size_um

    @property
    def upscale(self) -> tuple[float, float, float]:
        """Input voxels per output voxel along ``(z, y, x)``: 1 except for super-resolution."""
        return tuple(  # type: ignore[return-value]
            round(i / o, 6)
            for i, o in zip(self.input.voxel_size_um, self.network_voxel_size_um, strict=True)
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model.yaml") -> ModelSpec:
        """Validate a parsed ``model.yaml`` mapping; raise `ModelError` on any problem.

        Parameters
        ----------
        data
            The mapping, as ``yaml.safe_load`` gives it.
        source
            Where it came from; error messages start with it.

        Returns
        -------
        ModelSpec

        Raises
        ------
        ModelError
            A missing, mistyped or inconsistent field; the message names the file and field.
        """
        return _parse(data, source)

    def to_dict(self) -> dict[str, Any]:
        """The ``model.yaml`` mapping (plain lists and dicts, safe for ``yaml.safe_dump``)."""
        norm = self.input.normalisation
        norm_d: dict[str, Any] = {"kind": norm.kind}
        if norm.kind == "percentile":
            norm_d.update(low=norm.low, high=norm.high)
        elif norm.kind == "mean_std":
            norm_d.update(mean=norm.mean, std=norm.std)
        outputs = []
        for o in self.outputs:
            d: dict[str, Any] = {"name": o.name, "channels": o.channels}
            if o.offsets is not None:
                d["offsets"] = [list(off) for off in o.offsets]
            if o.voxel_size_um is not None:
                d["voxel_size_um"] = list(o.voxel_size_um)
            d["description"] = o.description
            outputs.append(d)
        weights = {}
        for key, w in self.weights.items():
            weights[key] = {"file": w.file, "sha256": w.sha256}
            if key == "torchscript" or w.half:
                weights[key]["half"] = w.half
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "description": self.description,
            "license": self.license,
            "authors": list(self.authors),
            "training": dict(self.training),
            "input": {
                "axes": self.input.axes,
                "channels": self.input.channels,
                "voxel_size_um": list(self.input.voxel_size_um),
                "normalisation": norm_d,
            },
            "tiling": {k: list(getattr(self.tiling, k)) for k in ("tile", "multiple", "halo")},
            "outputs": outputs,
            "postprocessing": dict(self.postprocessing),
            "metrics": dict(self.metrics),
            "weights": weights,
            **({"test_time_flips": list(self.test_time_flips)} if self.test_time_flips else {}),
        }


def _get(data: Any, key: str, where: str, default: Any = ...) -> Any:
    if not isinstance(data, dict):
        raise ModelError(f"{where}: expected a mapping, got {type(data).__name__}")
    if key not in data or data[key] is None:
        if default is ...:
            raise ModelError(f"{where}: missing required field '{key}'")
        return default
    return data[key]


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ModelError(f"{where}: expected a mapping, got {type(value).__name__}")
    return dict(value)


def _number(value: Any, where: str, kind: type = float) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(f"{where}: expected a number, got {value!r}")
    if kind is int and value != int(value):
        raise ModelError(f"{where}: expected a whole number, got {value!r}")
    return kind(value)


def _triple(value: Any, where: str, kind: type = int, minimum: int = 1) -> tuple:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ModelError(f"{where}: expected 3 values (z, y, x), got {value!r}")
    out = tuple(_number(v, where, kind) for v in value)
    if kind is float and any(v <= 0 for v in out):
        raise ModelError(f"{where}: values must be > 0")
    if kind is int and any(v < minimum for v in out):
        raise ModelError(f"{where}: values must be >= {minimum}")
    return out


def _parse_input(data: Any, where: str) -> InputSpec:
    axes = str(_get(data, "axes", where))
    if axes != "zyx":
        raise ModelError(f"{where}.axes: must be 'zyx' (3-D models only), got {axes!r}")
    channels = _number(_get(data, "channels", where), f"{where}.channels", int)
    if channels < 1:
        raise ModelError(f"{where}.channels: must be >= 1")
    voxel = _triple(_get(data, "voxel_size_um", where), f"{where}.voxel_size_um", float)
    norm_d = _mapping(_get(data, "normalisation", where, {}), f"{where}.normalisation")
    kind = str(norm_d.get("kind", "none"))
    if kind not in NORMALISATION_KINDS:
        raise ModelError(
            f"{where}.normalisation.kind: {kind!r} is not one of {', '.join(NORMALISATION_KINDS)}"
        )
    nums = {
        k: _number(norm_d[k], f"{where}.normalisation.{k}")
        for k in ("low", "high", "mean", "std")
        if norm_d.get(k) is not None
    }
    norm = Normalisation(kind, **nums)
    if kind == "percentile" and not 0 <= norm.low < norm.high <= 100:
        raise ModelError(f"{where}.normalisation: need 0 <= low < high <= 100")
    if kind == "mean_std" and norm.std <= 0:
        raise ModelError(f"{where}.normalisation.std: must be > 0")
    return InputSpec(axes, channels, voxel, norm)


def _parse_tiling(data: Any, where: str) -> TilingSpec:
    tile = _triple(_get(data, "tile", where), f"{where}.tile")
    multiple = _triple(_get(data, "multiple", where), f"{where}.multiple")
    halo = _triple(_get(data, "halo", where, [0, 0, 0]), f"{where}.halo", minimum=0)
    if any(t % m for t, m in zip(tile, multiple, strict=True)):
        raise ModelError(f"{where}.tile: {list(tile)} is not a multiple of {list(multiple)}")
    if max(tile) > MAX_TILE:
        raise ModelError(f"{where}.tile: {list(tile)} is larger than {MAX_TILE} on an axis")
    if any(t <= 2 * h for t, h in zip(tile, halo, strict=True)):
        raise ModelError(f"{where}.tile: {list(tile)} must exceed twice the halo {list(halo)}")
    return TilingSpec(tile, multiple, halo)


def _parse_output(data: Any, where: str) -> OutputSpec:
    name = str(_get(data, "name", where))
    channels = _number(_get(data, "channels", where), f"{where}.channels", int)
    if channels < 1:
        raise ModelError(f"{where}.channels: must be >= 1")
    offsets = _get(data, "offsets", where, None)
    if offsets is not None:
        if not isinstance(offsets, list | tuple):
            raise ModelError(f"{where}.offsets: expected a list of [z, y, x] offsets")
        offsets = tuple(_triple(o, f"{where}.offsets", minimum=-(2**31)) for o in offsets)
        if len(offsets) != channels:
            raise ModelError(f"{where}.offsets: {len(offsets)} offsets for {channels} channels")
    elif name == "affinities":
        raise ModelError(f"{where}: an affinities output needs 'offsets', one per channel")
    voxel = _get(data, "voxel_size_um", where, None)
    if voxel is not None:
        voxel = _triple(voxel, f"{where}.voxel_size_um", float)
    description = str(_get(data, "description", where, ""))
    return OutputSpec(name, channels, description, offsets, voxel)


def _parse_weights(data: Any, where: str) -> dict[str, WeightsSpec]:
    data = _mapping(data, where)
    if not data:
        raise ModelError(f"{where}: at least one of {', '.join(WEIGHT_FORMATS)} is required")
    weights = {}
    for key, entry in data.items():
        if key not in WEIGHT_FORMATS:
            raise ModelError(f"{where}: unknown format {key!r} (expected onnx or torchscript)")
        file = str(_get(entry, "file", f"{where}.{key}"))
        if Path(file).is_absolute() or ".." in Path(file).parts:
            raise ModelError(f"{where}.{key}.file: must be a path inside the package, got {file}")
        sha = str(_get(entry, "sha256", f"{where}.{key}")).lower()
        if not _SHA256.match(sha):
            raise ModelError(f"{where}.{key}.sha256: not a 64-digit hex sha256")
        half = _get(entry, "half", f"{where}.{key}", False)
        if not isinstance(half, bool):
            raise ModelError(f"{where}.{key}.half: expected true or false")
        weights[key] = WeightsSpec(file, sha, half)
    return weights


def _parse(data: Any, src: str) -> ModelSpec:
    if not isinstance(data, dict):
        raise ModelError(f"{src}: expected a mapping at the top level")
    fmt = data.get("format_version", FORMAT_VERSION)
    if fmt != FORMAT_VERSION:
        raise ModelError(f"{src}: format_version {fmt!r} is not supported (expected 1)")
    if unknown := sorted(set(data) - set(_KEYS)):
        logger.warning("%s: ignoring unknown fields %s", src, ", ".join(map(str, unknown)))
    name = str(_get(data, "name", src))
    if not _NAME.match(name):
        raise ModelError(f"{src}: name {name!r} may use only a-z, 0-9, '-', '_' and '.'")
    task = str(_get(data, "task", src))
    if task not in TASKS:
        raise ModelError(f"{src}: task {task!r} is not one of {', '.join(TASKS)}")
    authors = _get(data, "authors", src, [])
    authors = (authors,) if isinstance(authors, str) else tuple(str(a) for a in authors)
    outputs_d = _get(data, "outputs", src)
    if not isinstance(outputs_d, list) or not outputs_d:
        raise ModelError(f"{src}: outputs must be a non-empty list")
    outputs = tuple(_parse_output(o, f"{src}: outputs[{i}]") for i, o in enumerate(outputs_d))
    if len({o.name for o in outputs}) != len(outputs):
        raise ModelError(f"{src}: output names must be unique")
    if task == "affinities" and not any(o.offsets for o in outputs):
        raise ModelError(f"{src}: an affinities model needs an output with 'offsets'")
    if len({o.voxel_size_um for o in outputs}) > 1:
        raise ModelError(f"{src}: all outputs must have the same voxel_size_um")
    if outputs[0].voxel_size_um is not None and task != "restoration":
        raise ModelError(f"{src}: only a restoration model's outputs may have their own voxel size")
    return ModelSpec(
        name=name,
        version=str(_get(data, "version", src)),
        task=task,
        description=str(_get(data, "description", src)),
        license=str(_get(data, "license", src)),
        authors=authors,
        training=_mapping(data.get("training"), f"{src}: training"),
        input=_parse_input(_get(data, "input", src), f"{src}: input"),
        tiling=_parse_tiling(_get(data, "tiling", src), f"{src}: tiling"),
        outputs=outputs,
        postprocessing=_mapping(data.get("postprocessing"), f"{src}: postprocessing"),
        metrics=_mapping(data.get("metrics"), f"{src}: metrics"),
        weights=_parse_weights(_get(data, "weights", src), f"{src}: weights"),
        test_time_flips=_parse_flips(data.get("test_time_flips"), f"{src}: test_time_flips"),
    )


def _parse_flips(data: Any, where: str) -> tuple[str, ...]:
    if data is None:
        return ()
    if not isinstance(data, list | tuple) or not all(isinstance(f, str) for f in data):
        raise ModelError(f"{where}: expected a list of flipped axes, such as [x, y, yx]")
    for flip in data:
        if not flip or set(flip) - set("zyx") or len(set(flip)) != len(flip):
            raise ModelError(f"{where}: {flip!r} is not a set of axes among z, y and x")
    return tuple(data)


def read_spec(path: str | os.PathLike) -> ModelSpec:
    """Read and validate a ``model.yaml`` file.

    Parameters
    ----------
    path
        The ``model.yaml`` file.

    Returns
    -------
    ModelSpec

    Raises
    ------
    ModelError
        The file cannot be read, is not YAML, or is not a valid spec.
    """
    import yaml

    path = Path(path)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if key not in _PARSED:  # widgets list the models at every layer change: parse once
            _PARSED[key] = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise ModelError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    return ModelSpec.from_dict(copy.deepcopy(_PARSED[key]), str(path))


#: Parsed ``model.yaml`` content by (path, inode, mtime, size): a changed file is read again.
_PARSED: dict[tuple[str, int, int, int], Any] = {}


def write_spec(path: str | os.PathLike, spec: ModelSpec) -> None:
    """Write ``spec`` as ``model.yaml`` atomically.

    Parameters
    ----------
    path
        Destination, usually ``<package>/model.yaml``.
    spec
        The spec to write (as `ModelSpec.to_dict` gives it).
    """
    import yaml

    from napari_spines.io.atomic import atomic_path

    text = yaml.safe_dump(spec.to_dict(), sort_keys=False, allow_unicode=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks.

    Parameters
    ----------
    path
        The file to hash.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
