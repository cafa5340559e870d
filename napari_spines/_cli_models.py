"""The model commands of ``napari-spines``: ``predict``, ``models``, ``devices``."""

from __future__ import annotations

import argparse
import math
import sys
import time

from napari_spines.cli import fail
from napari_spines.io import VolumeReadError, read_volumes
from napari_spines.io.outputs import create_zarr_output, write_float_tiff


class TextProgress:
    """``(done, total)`` progress printed on one line of stderr, at most a few times a second."""

    def __init__(self, label: str, unit: str = "tiles") -> None:
        self.label = label
        self.unit = unit
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.25:
            return
        self._last = now
        end = "\n" if done >= total else ""
        percent = 100 * done // max(total, 1)
        print(
            f"\r{self.label}: {done}/{total} {self.unit} ({percent}%)",
            end=end,
            file=sys.stderr,
            flush=True,
        )


def predict(args: argparse.Namespace) -> int:
    """Run a model over a stack and write the raw output, channels first, float32."""
    from napari_spines.inference import predict_volume
    from napari_spines.models import ModelError, find_model, load_model

    suffix = args.output.name.lower()
    if not suffix.endswith((".tif", ".tiff", ".zarr")):
        return fail(f"{args.output}: output must end in .tif, .tiff or .zarr")
    try:
        volume = read_volumes(args.image)[0]
        package = find_model(args.model)
        model = load_model(package, runtime=args.runtime, device=args.device)
    except (VolumeReadError, ModelError) as exc:
        return fail(str(exc))
    spec = package.spec
    if args.voxel_size:
        voxel = tuple(args.voxel_size[-len(volume.voxel_size_um) :])
    elif volume.voxel_size_known:
        voxel = volume.voxel_size_um
    else:
        voxel = None
        print(
            f"napari-spines: warning: {args.image.name} has no voxel size; assuming the "
            f"model's {spec.input.voxel_size_um} µm (set --voxel-size)",
            file=sys.stderr,
        )
    data = volume.levels[0]
    out_axes = "C" + volume.axes.replace("C", "")
    out_shape = (
        spec.n_output_channels,
        *(n for a, n in zip(volume.axes, volume.shape, strict=True) if a != "C"),
    )
    voxel_out = voxel or spec.input.voxel_size_um[-len(volume.voxel_size_um) :]
    out = (
        create_zarr_output(args.output, out_shape, out_axes, voxel_out)
        if suffix.endswith(".zarr")
        else None
    )
    print(
        f"{package.spec.name} ({model.runtime}, {model.provider}) on {args.image.name} "
        f"{volume.shape} {volume.axes}",
        file=sys.stderr,
    )
    started = time.perf_counter()
    try:
        result = predict_volume(
            data,
            volume.axes,
            model,
            spec,
            voxel_size_um=voxel,
            tile=args.tile,
            batch_size=args.batch_size,
            out=out,
            progress=TextProgress("predict"),
        )
    except (ValueError, ModelError) as exc:
        return fail(f"{args.image.name}: {exc}")
    seconds = time.perf_counter() - started
    if out is None:
        write_float_tiff(args.output, result, out_axes, voxel_out)
    voxels = math.prod(n for a, n in zip(volume.axes, volume.shape, strict=True) if a != "C")
    print(
        f"wrote {args.output} {tuple(result.shape)} float32 in {seconds:.1f} s "
        f"({voxels / seconds / 1e6:.2f} Mvoxel/s)",
        file=sys.stderr,
    )
    return 0


def models(args: argparse.Namespace) -> int:
    """Print every registered model: name, task, runtimes, voxel size, where it comes from."""
    from napari_spines.models import list_models, user_dir

    packages = list_models()
    rows = [("name", "version", "task", "runtimes", "voxel size (µm)", "source")]
    for p in packages:
        rows.append(
            (
                p.spec.name,
                p.spec.version,
                p.spec.task,
                ",".join(p.runtimes),
                " × ".join(f"{v:g}" for v in p.spec.input.voxel_size_um),
                f"{p.source}: {p.root}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    if not packages:
        print("(no models)")
    print(f"\nuser models folder: {user_dir()} (set NAPARI_SPINES_MODELS to change it)")
    return 0


def devices(args: argparse.Namespace) -> int:
    """Print the runtimes, execution providers and devices that really work here."""
    from napari_spines.models import usable_devices

    for runtime, names in usable_devices().items():
        print(f"{runtime}: {', '.join(names) or 'none'}")
    return 0
