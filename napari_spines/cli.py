"""The ``napari-spines`` command: open the viewer with our widgets, the demo, or inspect a file.

Heavy imports (napari, Qt) happen only in the commands that open a window.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from napari_spines import __version__

PLUGIN = "napari-spines"
WIDGETS = (
    "Spine detection",
    "Segmentation",
    "Run model",
    "Train model",
    "Voxel size",
    "Synthetic data",
)
DEMO_SAMPLES = ("two_photon",)
EXIT_BAD_INPUT = 2


def fail(message: str) -> int:
    """Print a one-line error for the user and return the bad-input exit code."""
    print(f"napari-spines: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def chosen_voxel_size(volume: object, override: Sequence[float] | None) -> tuple | None:
    """``--voxel-size`` when given, else the file's when it has one, else None (the model's)."""
    if override:
        return tuple(override)
    return volume.voxel_size_um if volume.voxel_size_known else None  # type: ignore[attr-defined]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="napari-spines",
        description="Dendritic spines and EM neuron segmentation in napari. "
        "Without a command, opens napari with the napari-spines widgets docked.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    view = commands.add_parser("view", help="open napari with the widgets docked (default)")
    view.add_argument("files", nargs="*", type=Path, help="stacks or spine tables to open")
    demo = commands.add_parser("demo", help="open napari with the sample data and the widgets")
    demo.add_argument(
        "--sample",
        action="append",
        choices=("two_photon", "two_photon_sessions", "em"),
        help="sample to load (repeatable; default: two_photon)",
    )
    demo.add_argument(
        "--screenshot", type=Path, metavar="PNG", help="save a screenshot of the window and quit"
    )
    predict = commands.add_parser(
        "predict", help="run a model over a stack; write its raw output (float32, channels first)"
    )
    predict.add_argument("image", type=Path, help="stack to run on (TIFF, HDF5, Zarr)")
    predict.add_argument(
        "-m",
        "--model",
        required=True,
        help="model name (see `napari-spines models`) or package path",
    )
    predict.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="output .tif (OME-TIFF) or .zarr (written tile by tile)",
    )
    predict.add_argument(
        "--tile",
        nargs=3,
        type=int,
        metavar=("Z", "Y", "X"),
        help="tile size in model voxels (default: the model's)",
    )
    predict.add_argument("--runtime", choices=("auto", "onnx", "torch"), default="auto")
    predict.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    predict.add_argument(
        "--voxel-size",
        nargs=3,
        type=float,
        metavar=("Z", "Y", "X"),
        help="voxel size of the stack in µm (default: from the file)",
    )
    predict.add_argument("--batch-size", type=int, default=1, help="tiles per network call")
    from napari_spines import _cli_segment, _cli_spines

    _cli_segment.add_commands(commands, _cli_spines.add_commands(commands))
    commands.add_parser("models", help="list the models: built-in, user folder")
    commands.add_parser("devices", help="list the runtimes and devices really usable here")
    synthetic = commands.add_parser(
        "synthetic", help="write a synthetic stack with its ground truth (from a seed)"
    )
    synthetic.add_argument("kind", choices=("two-photon", "two-photon-sessions", "em"))
    synthetic.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="stack .tif; ground truth goes beside it (_spines.csv or _labels.tif)",
    )
    synthetic.add_argument("--shape", nargs=3, type=int, metavar=("Z", "Y", "X"))
    synthetic.add_argument("--seed", type=int, default=0)
    info = commands.add_parser("info", help="print what the reader sees in a file")
    info.add_argument("file", type=Path)
    info.add_argument(
        "--lazy",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force (or forbid) lazy reading; default decides by size",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-spines`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "info":
        return info(args.file, lazy=args.lazy)
    if args.command == "synthetic":
        return write_synthetic(args.kind, args.output, args.shape, args.seed)
    if args.command in ("predict", "models", "devices"):
        from napari_spines import _cli_models

        return getattr(_cli_models, args.command)(args)
    if args.command in ("segment", "affinities") or getattr(args, "what", None) == "affinities":
        from napari_spines import _cli_segment

        if args.command == "train":
            return _cli_segment.train_affinities(args)
        return (
            _cli_segment.segment(args)
            if args.command == "segment"
            else _cli_segment.labels_affinities(args)
        )
    if args.command in ("detect", "score", "train"):
        from napari_spines import _cli_spines

        return getattr(_cli_spines, args.command)(args)
    if args.command == "demo":
        return open_viewer(samples=args.sample or DEMO_SAMPLES, screenshot=args.screenshot)
    return open_viewer(files=getattr(args, "files", []))


def info(path: Path, lazy: bool | None = None) -> int:
    """Print shape, dtype, axes, voxel size and laziness of every volume in ``path``."""
    from napari_spines.io import VolumeReadError, read_volumes
    from napari_spines.io.points_csv import looks_like_points_csv, read_points_csv

    try:
        if looks_like_points_csv(path):
            coords, voxel, properties = read_points_csv(path)
            print(
                f"{path}: {len(coords)} points, axes {coords.shape[1]}D, "
                f"voxel size {_format_size(voxel)}, columns {', '.join(properties) or '-'}"
            )
            return 0
        volumes = read_volumes(path, lazy=lazy)
    except VolumeReadError as exc:
        return fail(str(exc))
    print(f"{path}")
    for v in volumes:
        nbytes = v.dtype.itemsize * math.prod(v.shape)
        print(f"  {v.kind} '{v.name}'")
        print(f"    shape:      {v.shape}  ({_format_bytes(nbytes)})")
        print(f"    dtype:      {v.dtype}")
        print(f"    axes:       {v.axes}")
        known = "" if v.voxel_size_known else "  (not in the file: 1 µm assumed)"
        print(f"    voxel size: {_format_size(v.voxel_size_um)}{known}")
        print(f"    lazy:       {'yes' if v.lazy else 'no'}")
        if v.multiscale:
            print(f"    multiscale: {len(v.levels)} levels {[tuple(lv.shape) for lv in v.levels]}")
    return 0


def write_synthetic(kind: str, output: Path, shape: Sequence[int] | None, seed: int) -> int:
    """Write a synthetic stack (OME-TIFF with voxel size) and its ground truth beside it."""
    from napari_spines.io import write_labels_tiff, write_points_csv
    from napari_spines.io.outputs import write_float_tiff
    from napari_spines.training.synthetic import synthetic_em, synthetic_two_photon

    if output.suffix.lower() not in (".tif", ".tiff"):
        return fail(f"{output}: output must be a .tif file")
    extra = {"shape": tuple(shape)} if shape else {}
    stem = output.with_suffix("")
    if kind == "em":
        sample = synthetic_em(seed=seed, **extra)
        write_float_tiff(output, sample.image, "ZYX", sample.voxel_size_um, sample.image.dtype)
        truth = write_labels_tiff(f"{stem}_labels.tif", sample.labels, sample.voxel_size_um)
    else:
        sessions = 3 if kind == "two-photon-sessions" else 1
        sample = synthetic_two_photon(seed=seed, n_timepoints=sessions, **extra)
        axes = "TZYX" if sessions > 1 else "ZYX"
        write_float_tiff(output, sample.image, axes, sample.voxel_size_um, sample.image.dtype)
        truth = write_points_csv(
            f"{stem}_spines.csv", sample.spines, sample.voxel_size_um, {"id": sample.spine_ids}
        )
    print(f"wrote {output} {sample.image.shape} and {truth}", file=sys.stderr)
    return 0


def open_viewer(
    files: Sequence[Path] = (), samples: Sequence[str] = (), screenshot: Path | None = None
) -> int:
    """Open napari with our widgets docked, the given files and samples loaded."""
    from napari_spines._reader import layer_data_for
    from napari_spines.io import VolumeReadError

    try:
        layer_data = [ld for path in files for ld in layer_data_for(path)]
    except VolumeReadError as exc:
        return fail(str(exc))

    import napari

    viewer = napari.Viewer(title="napari-spines")
    for data, meta, layer_type in layer_data:
        viewer.add_layer(napari.layers.Layer.create(data, meta, layer_type))
    for sample in samples:
        viewer.open_sample(PLUGIN, sample)
    dock_widgets(viewer)
    viewer.scale_bar.visible = True
    points = [layer for layer in viewer.layers if layer._type_string == "points"]
    if samples and points:
        from napari_spines._widgets._viewer import show_plane_of_points

        show_plane_of_points(viewer, points[0])
    if screenshot is not None:
        save_window_screenshot(viewer, screenshot)
        viewer.close()
        return 0
    napari.run()
    return 0


def dock_widgets(viewer: object) -> list:
    """Dock every napari-spines widget on the right of ``viewer``; return the widgets.

    They share one tabbed dock area (stacked, six widgets would not fit a laptop screen); the
    first, Spine detection, is the tab shown.
    """
    from qtpy.QtWidgets import QApplication

    docked = [
        viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True)  # type: ignore[attr-defined]
        for name in WIDGETS
    ]
    QApplication.processEvents()  # the tabs exist only once Qt has laid them out
    docked[0][0].raise_()
    return [widget for _dock, widget in docked]


def wait_while(busy: Callable[[], bool], timeout_s: float) -> None:
    """Process Qt events while ``busy()`` is true, for at most ``timeout_s`` (scripted viewers)."""
    import time

    from qtpy.QtWidgets import QApplication

    started = time.monotonic()
    while busy() and time.monotonic() - started < timeout_s:
        QApplication.processEvents()
        time.sleep(0.05)


def save_window_screenshot(viewer: object, path: Path) -> None:
    """Save the whole window (canvas and docked widgets) as a PNG."""
    from qtpy.QtWidgets import QApplication

    path.parent.mkdir(parents=True, exist_ok=True)
    viewer.window._qt_window.resize(1400, 850)
    for _ in range(5):
        QApplication.processEvents()
    viewer.screenshot(str(path), canvas_only=False)


def _format_size(voxel: Sequence[float]) -> str:
    axes = "zyx"[-len(voxel) :]
    return " × ".join(f"{v:g}" for v in voxel) + f" µm ({', '.join(axes)})"


def _format_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"


if __name__ == "__main__":
    sys.exit(main())
