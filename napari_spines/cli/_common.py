"""What the command modules share: one-line errors, progress on stderr, common options."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from napari_spines import validation
from napari_spines.errors import first_line
from napari_spines.voxel_size import VoxelSize

#: Exit code of a run stopped by bad input (argparse uses it too).
EXIT_BAD_INPUT = 2


def fail(message: str) -> int:
    """Print a one-line error for the user and return the bad-input exit code."""
    print(f"napari-spines: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def fail_with(exc: BaseException, prefix: str = "") -> int:
    """`fail` with the first line of ``exc``'s message, after ``prefix`` (e.g. a file name)."""
    return fail(f"{prefix}{first_line(exc)}")


def warn(message: str) -> None:
    """Print a one-line warning for the user."""
    print(f"napari-spines: warning: {message}", file=sys.stderr)


class TextProgress:
    """``(done, total)`` progress on stderr: a bar on a terminal, plain lines in a log.

    On a terminal one line is redrawn at most a few times a second (``detect [#####-----]
    5/16 tiles, 31%, 40 s left``); otherwise a line is printed at each tenth of the work and at
    the end, so a log stays short. ``unit="%"`` means ``done`` already is a percentage.
    ``(0, 0)`` means busy with no count: nothing is printed.
    """

    WIDTH = 24

    def __init__(self, label: str, unit: str = "tiles", stream: Any = None) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._tenth = -1
        self._started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            return
        now = time.monotonic()
        finished = done >= total
        fraction = min(max(done / total, 0.0), 1.0)
        if self.terminal:
            if not finished and now - self._last < 0.25:
                return
        else:
            tenth = int(fraction * 10)
            if not finished and tenth == self._tenth:
                return
            self._tenth = tenth
        self._last = now
        count = f"{done}%" if self.unit == "%" else f"{done}/{total} {self.unit}, {fraction:.0%}"
        elapsed = now - self._started
        left = ""
        if 0 < fraction < 1 and elapsed > 2:
            left = f", {elapsed * (1 - fraction) / fraction:.0f} s left"
        if self.terminal:
            filled = round(self.WIDTH * fraction)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            line = f"\r{self.label} [{bar}] {count}{left}\x1b[K"  # ESC[K: clear the rest
            print(line, end="\n" if finished else "", file=self.stream, flush=True)
        else:
            print(f"{self.label}: {count}{left}", file=self.stream, flush=True)


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show napari-spines' own warnings (`napari_spines.errors.DataWarning`) as `warn` lines.

    Other libraries' warnings keep Python's default handling.
    """
    from napari_spines.errors import DataWarning

    shown = warnings.showwarning

    def show(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
        if issubclass(category, DataWarning):
            warn(str(message))
        else:
            shown(message, category, *args, **kwargs)

    with warnings.catch_warnings():  # restores showwarning and the filters on exit
        warnings.simplefilter("always", DataWarning)
        warnings.showwarning = show
        yield


def output_problem(path: Path, suffixes: Sequence[str], folder_ok: bool = False) -> str | None:
    """Why ``path`` cannot be written as an output, in a line; None when it can.

    Checked before any work starts, so a long run never ends on an unwritable path.

    Parameters
    ----------
    path
        The output the user gave.
    suffixes
        The endings it may have, e.g. ``(".tif", ".tiff")``.
    folder_ok
        True for outputs that are folders (Zarr): an existing folder is then replaced.

    Returns
    -------
    str or None
    """
    if not path.name.lower().endswith(tuple(suffixes)):
        return f"{path}: output must end in {' or '.join(suffixes)}"
    if path.is_dir() and not folder_ok:
        return f"{path}: is a folder; give a file name ending in {' or '.join(suffixes)}"
    parent = next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir():
        return f"cannot write {path}: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot write {path}: no permission to write into {parent}"
    return None


def add_voxel_size_option(parser: argparse.ArgumentParser) -> None:
    """``--voxel-size Z Y X`` in µm, overriding the file's."""
    parser.add_argument(
        "--voxel-size",
        nargs=3,
        type=voxel_um,
        metavar=("Z", "Y", "X"),
        help="voxel size of the stack in µm (default: from the file)",
    )


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """``--runtime`` and ``--device`` of the commands that run a model."""
    parser.add_argument(
        "--runtime",
        choices=("auto", "onnx", "torch"),
        default="auto",
        help="how the model runs (default: auto, ONNX Runtime when the package has ONNX)",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "mps"),
        default="auto",
        help="where it runs (default: auto, a usable GPU, else the CPU)",
    )


def add_tile_option(parser: argparse.ArgumentParser) -> None:
    """``--tile`` of the commands that run a model: more memory for less halo per voxel."""
    parser.add_argument(
        "--tile",
        nargs=3,
        type=positive_int,
        metavar=("Z", "Y", "X"),
        help="tile size in model voxels (default: the model's); larger tiles take more "
        "memory and less time, with the same output (docs/performance.md)",
    )


def model_voxel_size(
    volume: Any,
    override: Sequence[float] | None,
    source: Path,
    model_voxel_um: Sequence[float] | None = None,
) -> VoxelSize:
    """The voxel size a command runs a model at: ``--voxel-size``, else the file's.

    When neither gives one, the model runs at its own voxel size, and a warning says so.

    Parameters
    ----------
    volume
        The `~napari_spines.io.volume.Volume` read from the input file.
    override
        ``--voxel-size``, or None.
    source
        The input file, named in the warning.
    model_voxel_um
        The model's voxel size, named in the warning when given.

    Returns
    -------
    VoxelSize
        Pass its ``for_model()`` to the core functions.
    """
    voxel = volume.voxel_size.given(override)
    if not voxel.known:
        assumed = f"{tuple(model_voxel_um)} µm" if model_voxel_um else "voxel size"
        warn(f"{source.name} has no voxel size; assuming the model's {assumed} (set --voxel-size)")
    return voxel


class DefaultsFormatter(argparse.HelpFormatter):
    """Help that ends each option with its default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        unset = default is None or default is False or default == [] or default == argparse.SUPPRESS
        if "%(default)" in text or unset:
            return text
        return f"{text} (default: %(default)s)"


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the usage is a ``--help`` away)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print ``PROG: error: MESSAGE (see --help)`` and exit with `EXIT_BAD_INPUT`."""
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _argument_type(check: Any, name: str, *args: Any) -> Any:
    """An argparse ``type`` from a `napari_spines.validation` check; ``name`` shows in --help."""

    def parse(text: str) -> Any:
        try:
            return check(text, "", *args)
        except validation.BadValue as exc:
            raise argparse.ArgumentTypeError(str(exc).strip()) from None

    parse.__name__ = name
    return parse


def _whole(text: str, name: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise validation.BadValue(f"must be a whole number, not {text!r}") from None
    if value < low:
        raise validation.BadValue(f"must be {low} or more, not {value}")
    return value


def _voxel_um(text: str, name: str) -> float:
    return validation.check_voxel_size((text,), name or "voxel size")[0]


#: argparse ``type``s: the value is checked as it is parsed, so bad values stop the command
#: before anything is read.
finite_float = _argument_type(validation.check_finite, "number")
positive_float = _argument_type(validation.check_positive, "positive number")
unit_interval = _argument_type(validation.check_range, "number in [0, 1]", 0.0, 1.0)
voxel_um = _argument_type(_voxel_um, "voxel size")
positive_int = _argument_type(_whole, "whole number of 1 or more", 1)
non_negative_int = _argument_type(_whole, "whole number of 0 or more", 0)


def show_training_log() -> None:
    """Print napari-spines' own INFO lines (validation scores) on stderr, not the libraries'.

    The root logger's level is left as it is, so exporters (torch.onnx, onnxscript) print
    nothing; a handler is added only when no logger on the way up has one (else lines would
    print twice).
    """
    import logging

    logger = logging.getLogger("napari_spines")
    logger.setLevel(logging.INFO)
    if not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)


def report_trained(trained: Any) -> int:
    """Print a trained model's figures and where its package is; return exit code 0.

    Parameters
    ----------
    trained
        The `~napari_spines.training.export.TrainedModel` a ``train`` command made.

    Returns
    -------
    int
        0.
    """
    print(trained.summary, file=sys.stderr)
    print(
        f"model package: {trained.package} (copy it into the user models folder to use it)",
        file=sys.stderr,
    )
    return 0
